"""Pool sources: hub definitions that make valid `datasets.load_dataset` calls, and mirror reads."""

import gzip
import inspect
import json

import datasets
import pytest

from magiclib.config import POOLS
from magiclib.data import sources, stages
from magiclib.data.sources import POOL_SOURCES, WEB_HUB_SOURCES, PoolSource, pool_source, read_docs


def _write_jsonl_gz(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.writelines(json.dumps(row) + "\n" for row in rows)


@pytest.fixture
def fake_mirror(tmp_path, monkeypatch):
    rows = [{"id": f"web-{i}", "text": f"document number {i} " * 5, "source": "fake"} for i in range(20)]
    _write_jsonl_gz(tmp_path / "pretrain" / "web" / "part.jsonl.gz", rows)
    monkeypatch.setenv("MAGIC_DATA", str(tmp_path))
    return tmp_path


def test_every_pool_and_web_filter_has_a_source():
    assert set(POOL_SOURCES) == set(POOLS)
    assert set(WEB_HUB_SOURCES) == {"heuristic", "edu", "quality"}


@pytest.mark.parametrize("source", [*POOL_SOURCES.values(), *WEB_HUB_SOURCES.values()], ids=lambda s: s.hub_id)
def test_hub_calls_bind_to_load_dataset(source):
    call = source.hub_call(streaming=True)
    inspect.signature(datasets.load_dataset).bind(**call)  # raises TypeError on a bad keyword
    assert call["path"].count("/") == 1 and call["split"] == "train" and call["streaming"] is True
    assert source.text_field and source.mirror_path.startswith("pretrain/")


def test_paper_sources_are_the_papers_datasets():
    assert WEB_HUB_SOURCES["heuristic"].hub_id == "tiiuae/falcon-refinedweb"
    assert WEB_HUB_SOURCES["edu"].hub_id == "HuggingFaceFW/fineweb-edu"
    assert WEB_HUB_SOURCES["quality"].hub_id == "mlfoundations/dclm-baseline-1.0"
    assert pool_source("code_python").hub_call() == {"path": "bigcode/starcoderdata", "split": "train",
                                                     "streaming": False, "data_dir": "python"}
    assert {pool_source(p).hub_config for p in ("wikipedia", "technical", "reference", "books")} == {
        "wikipedia", "arxiv", "stackexchange", "book"}


def test_hub_path_streams_a_local_dataset_with_the_hub_schema(tmp_path):
    # A local folder laid out like bigcode/starcoderdata (data_dir per language, text in `content`).
    rows = [{"content": f"def f{i}():\n    return {i}\n", "max_stars_count": i} for i in range(12)]
    _write_jsonl_gz(tmp_path / "repo" / "python" / "train-0.jsonl.gz", rows)
    source = PoolSource(str(tmp_path / "repo"), None, "train", None, "content", data_dir="python", code=True)
    docs, total = read_docs(source, "hub", n=5, seed=0)
    assert total is None and len(docs) == 5 and list(docs.columns) == ["id", "text", "source"]
    assert all(text.startswith("def f") for text in docs["text"])
    missing_field = PoolSource(str(tmp_path / "repo"), None, "train", None, "text", data_dir="python")
    with pytest.raises(KeyError, match="no 'text' field"):
        read_docs(missing_field, "hub", n=2, seed=0)


def test_mirror_sample_is_fixed_by_seed(fake_mirror):
    first, total = read_docs(pool_source("web"), "mirror", n=7, seed=3)
    again, _ = read_docs(pool_source("web"), "mirror", n=7, seed=3)
    other, _ = read_docs(pool_source("web"), "mirror", n=7, seed=4)
    assert total == 20 and len(first) == 7
    assert first["id"].tolist() == again["id"].tolist() != other["id"].tolist()
    assert len(read_docs(pool_source("web"), "mirror", n=None, seed=0)[0]) == 20


def test_unknown_pool_names_the_known_ones():
    with pytest.raises(ValueError, match="unknown pool 'webb'.*known pools"):
        pool_source("webb")


def test_missing_mirror_file_says_how_to_fix_it(fake_mirror):
    with pytest.raises(FileNotFoundError, match="not found at .*pretrain/code_go.*MAGIC_DATA"):
        read_docs(pool_source("code_go"), "mirror", n=3, seed=0)


def test_location_follows_the_setting(fake_mirror):
    assert sources.location("auto") == "mirror"
    assert sources.location("hub") == "hub"


def _stand_in_hub(monkeypatch, n_rows):
    """`load_rows` for the hub answered by a local streaming dataset; returns the count of rows it produced."""
    produced = []

    def rows():
        for i in range(n_rows):
            produced.append(i)
            yield {"content": f"hub document {i} " * 4, "id": f"h{i}"}

    def load_rows(source, *, where="auto", streaming=False):
        assert where == "hub" and streaming
        return datasets.IterableDataset.from_generator(rows)

    monkeypatch.setattr(stages, "load_rows", load_rows)
    return produced


def test_hub_stream_sample_is_fixed_by_seed(monkeypatch, tmp_path):
    _stand_in_hub(monkeypatch, 50)
    source = PoolSource("org/stand-in", None, "train", None, "content")

    def sample(seed):
        return [d.id for d in sources.sample_reader(source, "hub", 10, seed, ["p"], tmp_path).run()]

    assert sample(0) == sample(0) != sample(1) and len(set(sample(0))) == 10


def test_hub_stream_reads_lazily(monkeypatch, tmp_path):
    """Consuming the first document of an unsampled stream does not read the rest of it."""
    produced = _stand_in_hub(monkeypatch, 10_000)
    source = PoolSource("org/stand-in", None, "train", None, "content")
    documents = sources.sample_reader(source, "hub", None, 0, ["p"], tmp_path).run()
    first = next(documents)
    assert first.id == "h0" and first.metadata["source"] == "org/stand-in" and len(produced) < 1000  # of 10,000


def test_mirror_sample_streams_the_same_rows_as_the_whole_read(fake_mirror, tmp_path):
    reader = sources.sample_reader(pool_source("web"), "mirror", 7, 3, ["web"], tmp_path)
    assert reader.available() == 20
    assert [d.id for d in reader.run()] == [f"web-{i}" for i in reader.chosen(20)]
    tally = json.loads((tmp_path / "sample--web.00000.json").read_text())
    assert (tally["docs_in"], tally["docs_out"]) == (20, 7)
