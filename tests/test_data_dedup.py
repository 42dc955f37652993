"""Exact and MinHash near-duplicate removal keep the first copy and drop later ones."""

from magiclib.data.dedup import NearDedup, exact_duplicate_reasons, near_duplicate_reasons

BASE = " ".join(f"word{i} the river and the town number{i % 7}" for i in range(40))


def test_exact_duplicates_ignore_case_and_punctuation():
    texts = ["Hello, World! This is it.", "hello world this is it", "something else entirely"]
    reasons = exact_duplicate_reasons(texts)
    assert reasons[0] is None and reasons[2] is None
    assert reasons[1] == "exact duplicate: same words as an earlier document"


def test_near_duplicate_is_dropped_and_distinct_document_kept():
    tokens = BASE.split()
    tokens[10] = "changed"
    other = " ".join(f"alpha{i} beta gamma delta{i % 5}" for i in range(60))
    reasons = near_duplicate_reasons(["a", "b", "c"], [BASE, " ".join(tokens), other], threshold=0.8)
    assert reasons[0] is None
    assert reasons[1].startswith("near duplicate: of a")
    assert reasons[2] is None


def test_near_dedup_threshold_matters():
    half = BASE.split()
    half[::2] = [f"x{i}" for i in range(len(half[::2]))]  # every other word replaced: far below 0.8
    assert near_duplicate_reasons(["a", "b"], [BASE, " ".join(half)], threshold=0.8) == [None, None]


def test_near_dedup_remembers_documents_across_batches():
    tokens = BASE.split()
    tokens[10] = "changed"
    dedup = NearDedup(threshold=0.8)
    assert dedup.reasons(["a"], [BASE]) == [None]
    assert dedup.reasons(["b"], [" ".join(tokens)])[0].startswith("near duplicate: of a")
    assert [doc_id for doc_id, _ in dedup.kept] == ["a"]  # only kept documents are remembered
