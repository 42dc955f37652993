"""Token shards and stores: exact streams across shard boundaries, np.save-identical single shards, the
training loader over a shard folder, and a store that takes in pieces from several tasks."""

import numpy as np
import pytest

from magiclib.data.shards import StorePiece, TokenShards, TokenStore, write_shards
from magiclib.errors import MissingFile
from magiclib.train import TokenWindows


def _pieces(stream: np.ndarray, sizes: list[int]):
    for start, size in zip(np.cumsum([0, *sizes[:-1]]), sizes, strict=True):
        yield stream[start:start + size]


def test_shards_hold_the_stream_exactly(tmp_path):
    stream = np.arange(2500, dtype=np.uint16)
    written = write_shards(tmp_path / "tokens", _pieces(stream, [7, 993, 1, 1499]), 2500, np.dtype(np.uint16),
                           shard_tokens=1000)
    assert [w["tokens"] for w in written] == [1000, 1000, 500]
    shards = TokenShards(tmp_path / "tokens")
    assert len(shards) == 2500 and shards.max() == 2499
    for start, stop in [(0, 2500), (990, 1010), (1000, 1000), (1999, 2001), (2400, 2600)]:
        assert np.array_equal(shards[start:stop], stream[start:stop])


def test_one_shard_is_what_np_save_writes(tmp_path):
    stream = np.random.default_rng(0).integers(0, 4096, 777).astype(np.uint16)
    write_shards(tmp_path / "tokens", [stream], len(stream), np.dtype(np.uint16))
    np.save(tmp_path / "ref.npy", stream)
    assert (tmp_path / "tokens" / "00000.npy").read_bytes() == (tmp_path / "ref.npy").read_bytes()


def test_wrong_token_count_leaves_no_shards(tmp_path):
    for pieces, total in (([np.ones(10, np.uint16)], 12), ([np.ones(10, np.uint16)], 8)):
        with pytest.raises(ValueError, match="announced"):
            write_shards(tmp_path / "tokens", pieces, total, np.dtype(np.uint16), shard_tokens=4)
        assert not (tmp_path / "tokens").exists()


def test_training_windows_span_shards_like_one_array(tmp_path):
    stream = np.random.default_rng(1).integers(0, 300, 5000).astype(np.uint16)
    write_shards(tmp_path / "tokens", [stream], 5000, np.dtype(np.uint16), shard_tokens=700)
    np.save(tmp_path / "flat.npy", stream)
    sharded, flat = TokenWindows(tmp_path / "tokens", 64, 300), TokenWindows(tmp_path / "flat.npy", 64, 300)
    assert len(sharded) == len(flat) == (5000 - 1) // 64
    for i in range(len(flat)):
        assert all(np.array_equal(a, b) for a, b in zip(sharded[i], flat[i], strict=True))
    assert isinstance(sharded.tokens.shards[0], np.memmap)


def test_missing_shards_say_what_to_run(tmp_path):
    with pytest.raises(MissingFile, match="build the mixture"):
        TokenShards(tmp_path / "nothing")


def test_store_takes_pieces_from_several_tasks(tmp_path):
    dtype = np.dtype(np.uint16)
    first = StorePiece(tmp_path, dtype, rank=0)
    first.write(np.array([4, 1]), np.array([7, 7, 7, 0, 5, 0]), np.array([4, 2]))
    first.close()
    unfinished = StorePiece(tmp_path, dtype, rank=1)  # a task that died: its rows are not taken in
    unfinished.write(np.array([2]), np.array([9, 0]), np.array([2]))
    store = TokenStore(tmp_path, 6, dtype)
    assert store.length.tolist() == [-1, 2, -1, -1, 4, -1]
    assert store.missing(np.array([5, 1, 2, 2, 4])).tolist() == [2, 5]
    again = StorePiece(tmp_path, dtype, rank=1)  # row 1 tokenized twice (two jobs): the same tokens, kept once
    again.write(np.array([1, 3]), np.array([5, 0, 8, 8, 0]), np.array([2, 3]))
    again.close()
    store.refresh()
    assert store.read(4).tolist() == [7, 7, 7, 0] and store.read(3).tolist() == [8, 8, 0]
    assert store.read(1).tolist() == [5, 0] and store.read(4, count=2).tolist() == [7, 7]
    store.close()
