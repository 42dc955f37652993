"""Typed configuration of a study: dataclasses, named presets from configs/*.yaml, a.b.c=value overrides.

A study config says everything that sets what is computed and what it costs: the mixtures (web sources x
proportions), the data pipeline, the model scales with their pretraining and SFT settings, and the
evaluation. Presets live in `configs/<name>.yaml` and only list what differs from the defaults below.
Every step of the study hashes the part of the config it depends on (see `config_hash`), so a changed
value reruns exactly the steps it affects.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import BadValue

CONFIGS_DIR = Path(__file__).resolve().parents[2] / "configs"

# The three web sources of the paper and the local stand-ins (see ../shared/DESIGN.md).
WEB_FILTERS = ("heuristic", "edu", "quality")
POOLS = ("web", "code_python", "code_go", "wikipedia", "technical", "reference", "books")


class ConfigError(BadValue):
    """A config value or key that cannot be used; the message names the key and what is allowed."""


@dataclass
class WebSource:
    """One web source: which filter turns the raw web pool into it, and the code pools paired with it."""

    label: str
    filter: str
    code_pools: list[str]

    def __post_init__(self):
        _check_choice("filter", self.filter, WEB_FILTERS)
        for pool in self.code_pools:
            _check_choice("code_pools", pool, POOLS)


@dataclass
class Proportions:
    """Token shares of web, code and curated text in a mixture; they must sum to 1."""

    web: float
    code: float
    curated: float

    def __post_init__(self):
        total = self.web + self.code + self.curated
        if abs(total - 1.0) > 1e-6 or min(self.web, self.code, self.curated) < 0:
            raise ConfigError(
                f"proportions web/code/curated = {self.web}/{self.code}/{self.curated} sum to {total:g}; "
                "give non-negative shares that sum to 1 (e.g. web: 0.65, code: 0.25, curated: 0.10)"
            )


def _paper_web_sources() -> dict[str, WebSource]:
    return {
        "V1": WebSource("RefinedWeb-style (heuristic rules + dedup)", "heuristic", ["code_python"]),
        "V2": WebSource("FineWeb-Edu-style (educational classifier)", "edu", ["code_python", "code_go"]),
        "V3": WebSource("DCLM-style (quality classifier)", "quality", ["code_python", "code_go"]),
    }


def _paper_proportions() -> dict[str, Proportions]:
    return {
        "P0": Proportions(0.65, 0.25, 0.10),
        "P1": Proportions(0.45, 0.35, 0.20),
        "P2": Proportions(0.25, 0.45, 0.30),
    }


@dataclass
class DataConfig:
    """The data pipeline: where pools come from, how much is read, the filters, the tokenizer."""

    source: str = "auto"  # auto (mirror if found, else hub) | mirror | hub
    curated_pools: list[str] = field(default_factory=lambda: ["wikipedia", "technical", "reference", "books"])
    docs_per_pool: int | None = 4000  # cap on documents read per pool (None: all), fixed-seed sample
    tokens_per_mixture: int = 2_000_000  # pretraining tokens written per mixture
    edu_keep_fraction: float = 0.5  # V2: share of (heuristic-passing) web documents kept
    quality_keep_fraction: float = 0.5  # V3: share kept by the quality classifier
    near_dup_threshold: float = 0.8  # MinHash Jaccard above which a document is a near duplicate
    decontam_ngram: int = 13  # drop documents sharing an n-gram with any benchmark item
    tokenizer: str | None = None  # a pretrained tokenizer name (paper preset); None: train a BPE
    vocab_size: int = 4096  # for the trained BPE
    tokenizer_train_docs: int = 3000  # documents sampled across pools to train the BPE
    tasks: int = 1  # parallel tokenisation tasks (datatrove); the tokens written do not depend on it

    def __post_init__(self):
        _check_choice("data.source", self.source, ("auto", "mirror", "hub"))
        if self.tasks < 1:
            raise ConfigError(f"data.tasks = {self.tasks}; it must be at least 1 (one task per core is typical)")
        for pool in self.curated_pools:
            _check_choice("data.curated_pools", pool, POOLS)
        for name in ("edu_keep_fraction", "quality_keep_fraction", "near_dup_threshold"):
            value = getattr(self, name)
            if not 0 < value <= 1:
                raise ConfigError(f"data.{name} = {value}; it must be in (0, 1]")


@dataclass
class ModelConfig:
    """Shape of a Llama-family decoder (gated FFN, RoPE, RMSNorm)."""

    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    head_dim: int = 32
    ffn_mult: float = 4.0  # intermediate size = ffn_mult * d_model (gated: three matrices)
    vocab_size: int = 4096
    context: int = 256
    tie_embeddings: bool = True

    def __post_init__(self):
        for name in ("d_model", "n_layers", "n_heads", "head_dim", "vocab_size", "context"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"model.{name} = {getattr(self, name)}; it must be a positive integer")


@dataclass
class TrainConfig:
    """One training stage (pretraining or SFT): optimizer, schedule, batch, length."""

    lr: float = 3e-3
    min_lr_ratio: float = 0.1  # cosine decays to lr * min_lr_ratio
    warmup_steps: int = 20
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    batch_size: int = 16  # sequences per optimizer step (global)
    micro_batch_size: int = 16  # sequences per forward pass; accumulation = batch / micro / world
    seq_len: int = 256
    max_steps: int | None = 200  # pretraining: steps (None: one pass over the mixture's tokens)
    epochs: float = 1.0  # SFT: passes over the SFT examples (max_steps None)
    log_every: int = 10
    checkpoint_every: int | None = None  # steps between resumable checkpoints (None: none; model/ at the end)
    precision: str = "auto"  # auto (bf16 autocast on GPU; on CPU where measured faster, see precision.py) | fp32 | bf16
    threads: int | None = None  # torch threads on CPU (None: all cores, or 1 per grid worker)
    # How a step is executed on a GPU (train.py); at their defaults they are left out of step hashes.
    compile: bool = False  # torch.compile each decoder block
    activation_checkpointing: bool = False  # recompute each block's activations in backward (less memory)
    loss_chunk: int | None = None  # tokens per cross-entropy chunk, logits never whole (None: one piece)

    def __post_init__(self):
        _check_choice("precision", self.precision, ("auto", "fp32", "bf16"))
        if self.batch_size % self.micro_batch_size:
            raise ConfigError(
                f"batch_size {self.batch_size} is not a multiple of micro_batch_size {self.micro_batch_size}"
            )
        if self.lr <= 0:
            raise ConfigError(f"lr = {self.lr}; it must be positive")
        if self.loss_chunk is not None and self.loss_chunk < 1:
            raise ConfigError(f"loss_chunk = {self.loss_chunk}; give a positive number of tokens, or null")


@dataclass
class ScaleConfig:
    """One model scale: its shape and its two training stages."""

    model: ModelConfig = field(default_factory=ModelConfig)
    pretrain: TrainConfig = field(default_factory=TrainConfig)
    sft: TrainConfig = field(default_factory=lambda: TrainConfig(lr=1e-3, max_steps=None, epochs=1.0))
    gpus: int = 1  # per run, on a cluster (torchrun inside the job when > 1)
    # Training seeds at this scale (None: the study's `seeds`). Several seeds at one scale measure seed
    # noise there (analysis.components) without paying for them at every scale. Not part of any step hash.
    seeds: list[int] | None = None

    def __post_init__(self):
        if self.seeds is not None and (not self.seeds or len(set(self.seeds)) != len(self.seeds)):
            raise ConfigError(f"a scale's seeds = {self.seeds!r}; give distinct seeds, e.g. [0, 1, 2], or null "
                              "for the study's seeds")


@dataclass
class SFTDataConfig:
    """The instruction mix: a Tulu-v2-schema dataset, optionally subsampled."""

    dataset: str = "tulu-mini"  # mirror folder under sft/, or a hub id (allenai/tulu-v2-sft-mixture)
    max_examples: int | None = 2000
    components: list[str] | None = None  # keep only these `dataset` values (None: all)


@dataclass
class EvalConfig:
    """Scoring: which benchmarks, how many items each, batching."""

    benchmarks: list[str] | None = None  # None: the 20 of the study (names checked by benchmarks.scored_benchmarks)
    items_per_benchmark: int | None = 100  # fixed-seed subsample (None: all items)
    batch_size: int = 32
    max_length: int | None = None  # context budget in tokens (None: the model's context)
    precision: str = "auto"  # auto (bf16 autocast on GPU; on CPU where measured faster, see precision.py) | fp32 | bf16

    def __post_init__(self):
        _check_choice("eval.precision", self.precision, ("auto", "fp32", "bf16"))


@dataclass
class StageResources:
    """What one Slurm job of a stage asks for. GPUs follow the scale: `gpus` for training, one for scoring
    when the scale has any, none for the data job."""

    cpus: int = 8
    mem_gb: int = 64
    time_min: int = 240  # per job; a longer training run checkpoints at the limit and is requeued

    def __post_init__(self):
        for name in ("cpus", "mem_gb", "time_min"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"slurm.<stage>.{name} = {getattr(self, name)}; it must be a positive integer")


@dataclass
class SlurmConfig:
    """The slurm executor (submitit): where jobs go, what each stage asks for, and how arrays are throttled."""

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None  # node features, e.g. "h100" or "cpu&avx512"
    gpu_type: str | None = None  # e.g. "h100": GPUs are asked for as --gpus-per-node=h100:<n>
    setup: list[str] = field(default_factory=list)  # shell lines before each task (module load, activation)
    extra: dict[str, str] = field(default_factory=dict)  # more sbatch options, e.g. {"mail-type": "FAIL"}
    max_parallel: int = 64  # tasks of one array running at once (%N)
    signal_delay_s: int = 300  # SIGUSR2 this long before the time limit: time to checkpoint and requeue
    max_requeues: int = 10  # time limits one run may meet (it resumes from its checkpoint after each)
    notebooks: bool = False  # each task runs its papermill run notebook (kept as a record; a kernel start more)
    data: StageResources = field(default_factory=lambda: StageResources(cpus=8, mem_gb=32, time_min=240))
    pretrain: StageResources = field(default_factory=StageResources)
    sft: StageResources = field(default_factory=StageResources)
    evaluate: StageResources = field(default_factory=lambda: StageResources(cpus=8, mem_gb=32, time_min=120))
    # Before per-stage resources one size fitted every job; config.yaml files of older results still say so.
    time_min: int | None = None
    cpus_per_task: int | None = None
    mem_gb: int | None = None

    def __post_init__(self):
        for old, new in (("time_min", "time_min"), ("cpus_per_task", "cpus"), ("mem_gb", "mem_gb")):
            if getattr(self, old) is not None:  # an old config: the one size for every stage
                for stage in (self.data, self.pretrain, self.sft, self.evaluate):
                    setattr(stage, new, getattr(self, old))
        if self.max_parallel <= 0 or self.max_requeues < 0:
            raise ConfigError(f"slurm.max_parallel = {self.max_parallel}, slurm.max_requeues = {self.max_requeues}; "
                              "give a positive throttle and a non-negative number of requeues")
        for stage in ("pretrain", "sft"):
            limit = getattr(self, stage).time_min * 60
            if not 0 < self.signal_delay_s < limit:
                raise ConfigError(f"slurm.signal_delay_s = {self.signal_delay_s} must be positive and shorter than "
                                  f"slurm.{stage}.time_min ({limit} s): the warning comes that long before the limit")
        if not all(isinstance(line, str) for line in self.setup):
            raise ConfigError(f"slurm.setup = {self.setup!r}; give a list of shell lines")


@dataclass
class StudyConfig:
    """The whole study: mixtures x scales x stages, scored on the benchmarks."""

    name: str = "custom"
    seeds: list[int] = field(default_factory=lambda: [0])
    web_sources: dict[str, WebSource] = field(default_factory=_paper_web_sources)
    proportions: dict[str, Proportions] = field(default_factory=_paper_proportions)
    mixtures: list[str] | None = None  # e.g. ["V1-P0", "V2-P2"]; None: every web source x proportion
    data: DataConfig = field(default_factory=DataConfig)
    sft_data: SFTDataConfig = field(default_factory=SFTDataConfig)
    scales: dict[str, ScaleConfig] = field(default_factory=lambda: {"base": ScaleConfig()})
    eval: EvalConfig = field(default_factory=EvalConfig)
    slurm: SlurmConfig = field(default_factory=SlurmConfig)

    def __post_init__(self):
        if not self.seeds:
            raise ConfigError("seeds is empty; give at least one seed, e.g. seeds=[0]")
        if not self.scales:
            raise ConfigError("scales is empty; give at least one scale")
        allowed = self.all_mixtures()
        for name in self.mixtures or []:
            _check_choice("mixtures", name, allowed)

    def all_mixtures(self) -> list[str]:
        return [f"{w}-{p}" for w in self.web_sources for p in self.proportions]

    @property
    def mixture_names(self) -> list[str]:
        return list(self.mixtures) if self.mixtures else self.all_mixtures()

    def mixture(self, name: str) -> tuple[WebSource, Proportions]:
        """The web source and proportions of a mixture name such as 'V2-P1'."""
        _check_choice("mixture", name, self.all_mixtures())
        web, props = name.split("-", 1)
        return self.web_sources[web], self.proportions[props]

    def scale(self, name: str) -> ScaleConfig:
        _check_choice("scale", name, list(self.scales))
        return self.scales[name]

    def scale_seeds(self, name: str) -> list[int]:
        """The training seeds of one scale: its own `seeds`, else the study's."""
        own = self.scale(name).seeds
        return list(own) if own is not None else list(self.seeds)

    @property
    def all_seeds(self) -> list[int]:
        """Every seed some scale trains with, in order of first use (each gets its mixtures' token shards)."""
        return list(dict.fromkeys(seed for name in self.scales for seed in self.scale_seeds(name)))


# --- loading, overrides, hashing ---------------------------------------------------------------------


def available_presets() -> list[str]:
    return sorted(p.stem for p in CONFIGS_DIR.glob("*.yaml"))


def load_config(preset: str = "mini", overrides: list[str] | tuple[str, ...] = ()) -> StudyConfig:
    """Load a named preset (or a path to a YAML file) and apply `a.b.c=value` overrides."""
    path = Path(preset)
    if not path.suffix:
        path = CONFIGS_DIR / f"{preset}.yaml"
        if not path.exists():
            raise ConfigError(f"unknown preset {preset!r}; choose one of {available_presets()} or a YAML path")
    elif not path.exists():
        raise ConfigError(f"config file {path} does not exist")
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of config keys")
    raw.setdefault("name", path.stem)
    for item in overrides:
        for each in _expand_train(raw, item):
            apply_override(raw, each)
    return from_dict(StudyConfig, raw)


def _expand_train(raw: dict, item: str) -> list[str]:
    """`train.key=value` sets key in both training stages of every scale (e.g. train.precision=bf16)."""
    if not item.startswith("train."):
        return [item]
    return [f"scales.{scale}.{stage}.{item[len('train.'):]}" for scale in raw.get("scales") or {"base": {}}
            for stage in ("pretrain", "sft")]


def apply_override(raw: dict, item: str) -> None:
    """Set `a.b.c=value` in a nested dict; the value is parsed as YAML (numbers, lists, null)."""
    if "=" not in item:
        raise ConfigError(f"override {item!r} must look like key.path=value, e.g. eval.batch_size=64")
    key, value = item.split("=", 1)
    parts = key.strip().split(".")
    node = raw
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {item!r}: {part!r} is not a section")
    node[parts[-1]] = yaml.safe_load(value)


def from_dict(cls: type, data: Any, where: str = ""):
    """Build dataclass `cls` from plain data, rejecting unknown keys and converting nested types.

    Keys missing from `data` keep the dataclass default; a dataclass-valued key given as a mapping is
    merged over its default, so a preset lists only what differs.
    """
    if isinstance(data, cls):
        return data
    if not isinstance(data, dict):
        raise ConfigError(f"{where or cls.__name__}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ConfigError(f"unknown key {_join(where, unknown[0])!r}; allowed keys: {names}")
    defaults = cls() if all(_has_default(f) for f in dataclasses.fields(cls)) else None
    kwargs = {}
    for name in names:
        if name not in data:
            continue
        default = getattr(defaults, name, None) if defaults is not None else None
        kwargs[name] = _convert(hints[name], data[name], _join(where, name), default)
    try:
        return cls(**kwargs)
    except TypeError as err:  # a required field is missing
        raise ConfigError(f"{where or cls.__name__}: {err}") from None


def _convert(hint, value, where: str, default=None):
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _convert(inner[0], value, where, default)
    if dataclasses.is_dataclass(hint):
        if isinstance(value, dict) and default is not None:
            value = {**_shallow(default), **value}
        return from_dict(hint, value, where)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        value_hint = args[1]
        out = {}
        for key, item in value.items():
            base = default.get(key) if isinstance(default, dict) else None
            if dataclasses.is_dataclass(value_hint) and base is None and isinstance(default, dict) and default:
                base = next(iter(default.values()))  # a new entry inherits the first entry's defaults
            out[str(key)] = _convert(value_hint, item, _join(where, str(key)), base)
        return out
    if origin is list:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return [_convert(args[0], v, f"{where}[{i}]") for i, v in enumerate(value)]
    if hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if hint in (int, str, bool, float) and not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
        raise ConfigError(f"{where} = {value!r}; expected {hint.__name__}")
    return value


def _shallow(obj) -> dict:
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}


def _has_default(f: dataclasses.Field) -> bool:
    return f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _check_choice(key: str, value, allowed) -> None:
    if value not in allowed:
        raise ConfigError(f"unknown {key} {value!r}; allowed: {list(allowed)}")


def to_dict(obj) -> Any:
    """Plain, JSON-ready data of a config (or any part of it)."""
    return dataclasses.asdict(obj) if dataclasses.is_dataclass(obj) else obj


def config_hash(*parts) -> str:
    """A short stable hash of config parts (dataclasses, dicts, strings...), for keying step outputs."""
    text = json.dumps([to_dict(p) for p in parts], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]
