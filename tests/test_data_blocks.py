"""The datatrove blocks: a pool read by rows over files, row groups and tasks; tokens as the HF tokenizer
gives them, eos appended."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datatrove.data import Document
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from magiclib.data import blocks
from magiclib.data.shards import TokenStore


@pytest.fixture
def pool(tmp_path):
    """A pool of 50 documents in two parquet files, the first in row groups of 7."""
    texts = [f"document {i} " + "word " * (i % 9) for i in range(50)]
    folder = tmp_path / "pool"
    folder.mkdir()
    pq.write_table(pa.table({"text": texts[:30]}), folder / "a.parquet", row_group_size=7)
    pd.DataFrame({"id": range(30, 50), "text": texts[30:]}).to_parquet(folder / "b.parquet")
    return folder, texts


def test_reader_yields_the_wanted_rows_split_over_tasks(pool):
    folder, texts = pool
    assert blocks.pool_rows(folder) == 50
    rows = np.array([0, 6, 7, 8, 29, 30, 31, 49])
    reader = blocks.PoolRowsReader(folder, rows)
    parts = [[(int(d.id), d.text) for d in reader.run(rank=r, world_size=3)] for r in range(3)]
    assert [[row for row, _ in part] for part in parts] == [[0, 8, 31], [6, 29, 49], [7, 30]]
    assert sorted(pair for part in parts for pair in part) == [(int(r), texts[r]) for r in rows]


def test_tokenize_block_stores_ids_plus_eos(pool, tmp_path):
    folder, texts = pool
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"],
                                                           initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    hf = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|endoftext|>")
    hf.save_pretrained(tmp_path / "tok")
    rows = np.arange(0, 50, 3)
    blocks.run_pipeline([blocks.PoolRowsReader(folder, rows),
                         blocks.TokenizeToStore(tmp_path / "store", tmp_path / "tok" / "tokenizer.json",
                                                "<|endoftext|>", np.dtype(np.uint16))], 1, tmp_path / "logs")
    store = TokenStore(tmp_path / "store", 50, np.dtype(np.uint16))
    assert (store.length >= 0).sum() == len(rows)
    for row in rows:
        assert store.read(row).tolist() == hf(texts[row], add_special_tokens=False)["input_ids"] + [hf.eos_token_id]


def test_pool_writer_bounds_its_row_groups(tmp_path, monkeypatch):
    """A pool is written in row groups of at most ROW_GROUP_DOCS documents or about ROW_GROUP_CHARS characters."""
    monkeypatch.setattr(blocks, "ROW_GROUP_DOCS", 4)
    monkeypatch.setattr(blocks, "ROW_GROUP_CHARS", 100)
    documents = [Document(text=("x" * 60 if i % 5 == 0 else "short"), id=str(i), metadata={"source": "s"})
                 for i in range(23)]
    blocks.run_pipeline([lambda data, rank, world_size: iter(documents), blocks.PoolWriter(tmp_path / "pool")],
                        1, tmp_path / "logs")
    file = pq.ParquetFile(tmp_path / "pool" / "00000.parquet")
    sizes = [file.metadata.row_group(g).num_rows for g in range(file.metadata.num_row_groups)]
    assert sum(sizes) == 23 and max(sizes) <= 4
    assert file.read().to_pylist()[5] == {"id": "5", "text": "x" * 60, "source": "s"}
