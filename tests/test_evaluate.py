"""`magic evaluate --model / --manifest`: checkpoints trained elsewhere, scored like the study's own."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from magiclib import benchmarks, cli, evaluate, paths, scorer
from magiclib.config import ModelConfig
from magiclib.data.tokenizer import EOS, train_bpe
from magiclib.model import build_model

pytestmark = pytest.mark.skipif(paths.find_mirror() is None, reason="needs the local data mirror")

NAMES = ["copa", "wsc273", "boolq", "hellaswag"]


def _texts():
    items = [item for name in NAMES for item in benchmarks.load_items(name)[:4]]
    return [context + continuation for item in items for context, continuation in item.requests()]


@pytest.fixture(scope="module")
def study_like(tmp_path_factory):
    """A Llama of the study's family with the study's kind of tokenizer (byte-level BPE, no BOS)."""
    folder = tmp_path_factory.mktemp("study_like")
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=train_bpe(_texts() * 4, 400), eos_token=EOS)
    model = build_model(ModelConfig(d_model=32, n_layers=2, n_heads=2, head_dim=16, vocab_size=400, context=512),
                        seed=0)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def other_family(tmp_path_factory):
    """GPT-2 (learned absolute positions) with a different tokenizer: word-piece-free BPE that adds a BOS
    token to every sequence, no chat template."""
    folder = tmp_path_factory.mktemp("other_family")
    raw = Tokenizer(models.BPE(unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.Metaspace()
    raw.decoder = decoders.Metaspace()
    raw.train_from_iterator(_texts() * 2, trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>", "<s>", "</s>"]))
    raw.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=raw, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=raw.get_vocab_size(), n_positions=2048, n_embd=32, n_layer=2,
                                       n_head=2, bos_token_id=1, eos_token_id=2))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def naive_logliks(model, tokenizer, items):
    """lm-eval's HF loop, one request at a time: full forward, log-softmax, gather."""
    out = []
    for choices in scorer.encode_items(tokenizer, items):
        for context_enc, continuation_enc in choices:
            inputs = (context_enc + continuation_enc)[:-1]
            with torch.no_grad():
                logprobs = torch.log_softmax(model(torch.tensor([inputs])).logits[0].float(), dim=-1)
            span = range(len(inputs) - len(continuation_enc), len(inputs))
            out.append(sum(logprobs[k, t].item() for k, t in zip(span, continuation_enc, strict=True)))
    return np.array(out)


def run_cli(args, capsys):
    code = cli.main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_evaluate_model_writes_tables_and_record(study_like, tmp_path, capsys):
    out = tmp_path / "out"
    code, stdout, _ = run_cli(["evaluate", "--model", str(study_like), "--benchmarks", "copa", "wsc273",
                               "--limit", "3", "--out", str(out), "--threads", "1"], capsys)
    assert code == 0 and stdout.strip() == str(out)
    for name in ("items", "per_item", "scores"):
        parquet, csv = pd.read_parquet(out / f"{name}.parquet"), pd.read_csv(out / f"{name}.csv")
        assert len(parquet) == len(csv) > 0
    items = pd.read_parquet(out / "items.parquet")
    assert items.groupby("benchmark")["item"].unique().map(list).to_dict() == {"copa": ["0", "1", "2"],
                                                                              "wsc273": ["0", "1", "2"]}
    record = json.loads((out / "run.json").read_text())
    assert record["model"]["sha256"] == evaluate.files_hash(study_like)
    assert record["model"]["n_params"] == sum(p.numel() for p in build_model(  # tied weights counted once
        ModelConfig(d_model=32, n_layers=2, n_heads=2, head_dim=16, vocab_size=400, context=512), 0).parameters())
    assert record["items_chosen"] == {"copa": ["0", "1", "2"], "wsc273": ["0", "1", "2"]}
    assert record["config"]["precision"] == "fp32" and "torch" in record["versions"]
    assert set(pd.read_parquet(out / "scores.parquet")["benchmark"]) == {"copa", "wsc273"}


def test_a_different_architecture_and_tokenizer_scores_as_lm_eval(other_family):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(other_family)
    assert tokenizer("a b")["input_ids"][0] == tokenizer.bos_token_id and tokenizer.chat_template is None
    model = AutoModelForCausalLM.from_pretrained(other_family).eval()
    items = [item for name in NAMES for item in benchmarks.load_items(name)[:3]]
    table = scorer.score_items(model, tokenizer, items, progress=False, max_tokens=256)
    np.testing.assert_allclose(table["loglik"], naive_logliks(model, tokenizer, items), atol=1e-4, rtol=0)


def test_sample_takes_a_seeded_subsample(study_like, tmp_path):
    chosen = evaluate.selection(["copa"], sample=5, seed=3)
    ids = [item.item_id for item in chosen.items()]
    assert ids == [str(i) for i in benchmarks.subsample(len(benchmarks.load_items("copa")), 5, 3)]


@pytest.mark.parametrize("args, message", [
    (["--benchmarks", "copa", "--limit", "100000"], "larger than copa's evaluated split"),
    (["--benchmarks", "nosuchbench"], "unknown benchmark 'nosuchbench'"),
    (["--limit", "2", "--sample", "2"], "not both"),
])
def test_bad_requests_get_one_line_errors(study_like, tmp_path, capsys, args, message):
    code, _, err = run_cli(["evaluate", "--model", str(study_like), "--out", str(tmp_path / "o"), *args], capsys)
    assert code == 1 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_a_folder_that_is_not_a_model_is_refused(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli(["evaluate", "--model", str(tmp_path / "empty"), "--limit", "1"], capsys)
    assert code == 1 and "is not a model folder" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli(["evaluate"], capsys)
    assert code == 2 and "--model" in err


def test_manifest_results_read_like_a_study(study_like, other_family, tmp_path, capsys):
    manifest = tmp_path / "family.yaml"
    manifest.write_text(yaml.safe_dump({"checkpoints": [
        {"mixture": "V1-P0", "scale": "tiny", "stage": "PT", "seed": 0, "path": str(study_like)},
        {"mixture": "V2-P1", "scale": "tiny", "stage": "PT", "seed": 0, "path": str(other_family),
         "code_share": 0.35},
    ]}))
    results = tmp_path / "results"
    args = ["evaluate", "--manifest", str(manifest), "--results", str(results), "--benchmarks", "copa", "boolq",
            "--limit", "4", "--threads", "1"]
    assert run_cli(args, capsys)[0] == 0
    runs = sorted((results / "runs" / "evaluate").iterdir())
    assert [r.name.rsplit("-", 1)[0] for r in runs] == ["V1-P0_tiny_PT_s0", "V2-P1_tiny_PT_s0"]
    written = [(r / "run.json").stat().st_mtime_ns for r in runs]
    assert run_cli(args, capsys)[0] == 0  # a second run scores nothing again
    assert [(r / "run.json").stat().st_mtime_ns for r in runs] == written
    code, stdout, _ = run_cli(["scores", "--results", str(results)], capsys)
    assert code == 0
    scores = pd.read_csv(pd.io.common.StringIO(stdout))
    assert list(scores.columns[:8]) == ["mixture", "web_source", "proportions", "code_share", "scale", "n_params",
                                        "stage", "seed"]
    assert len(scores) == 4 and set(scores["mixture"]) == {"V1-P0", "V2-P1"}
    assert scores.loc[scores["mixture"] == "V2-P1", "code_share"].eq(0.35).all()
    assert scores.loc[scores["mixture"] == "V1-P0", "web_source"].eq("V1").all()
    items = pd.read_parquet(results / "tables" / "items.parquet")
    assert len(items) == 2 * (4 * 2 + 4 * 2)


@pytest.mark.parametrize("rows, message", [
    ([{"mixture": "a", "scale": "s", "stage": "PT", "path": "x"}], "missing ['seed']"),
    ([{"mixture": "a", "scale": "s", "stage": "XX", "seed": 0, "path": "x"}], "stage must be PT or SFT"),
    ([{"mixture": "a", "scale": "s", "stage": "PT", "seed": 0, "path": "x"}] * 2, "appears 2 times"),
])
def test_bad_manifests_are_refused(tmp_path, rows, message):
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(rows))
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        evaluate.read_manifest(path)


def test_csv_manifest_paths_are_relative_to_the_manifest(study_like, tmp_path):
    (tmp_path / "ckpt").symlink_to(study_like)
    path = tmp_path / "m.csv"
    path.write_text("mixture,scale,stage,seed,path\nV1-P0,tiny,SFT,1,ckpt\n")
    frame = evaluate.read_manifest(path)
    assert frame.loc[0, "path"] == str(tmp_path / "ckpt") and frame.loc[0, "seed"] == 1


def test_a_manifest_family_feeds_the_analysis_and_the_book_chapters(study_like, other_family, tmp_path, capsys):
    from magiclib.chapters.rq1_persistence import Persistence

    family = [{"mixture": mixture, "scale": "tiny", "stage": stage, "seed": 0,
               "path": str(study_like if (k + (stage == "SFT")) % 2 else other_family)}
              for k, mixture in enumerate(["V1-P0", "V2-P1", "V3-P2"]) for stage in ("PT", "SFT")]
    manifest = tmp_path / "family.csv"
    pd.DataFrame(family).to_csv(manifest, index=False)
    results = tmp_path / "results"
    assert run_cli(["evaluate", "--manifest", str(manifest), "--results", str(results), "--benchmarks", "copa",
                    "boolq", "--limit", "6", "--threads", "1"], capsys)[0] == 0
    code, stdout, _ = run_cli(["analyse", "--items", str(results / "tables" / "items.parquet")], capsys)
    assert code == 0 and (results / "tables" / "analysis" / "transfer.csv").exists()
    chapter = Persistence(str(results), "mini", n_boot=20)
    assert chapter.n_mixtures == 3 and set(chapter.transfer["benchmark"]) >= {"copa", "boolq"}
