"""The realistic drill corpus: 4-25 word sentences, unique per request, deterministic per seed."""

import random
import re

import pytest
from tts_drill import corpus
from tts_drill.corpus import MAX_WORDS, MIN_WORDS, REF_SPACE, Corpus, sentence, word_count


@pytest.mark.parametrize("seed", [0, 1, 42, 2**40])
def test_every_sentence_has_4_to_25_words(seed):
    texts = [Corpus(seed).text(seq) for seq in range(3000)]
    counts = [word_count(t) for t in texts]
    assert MIN_WORDS <= min(counts) and max(counts) <= MAX_WORDS
    # Not a handful of fixed lengths: short notifications and long customer-service sentences.
    assert min(counts) <= 6 and max(counts) >= 20


def test_every_template_fills_within_the_word_bounds():
    rng = random.Random(5)
    for template in corpus.TEMPLATES:
        assert "{ref}" in template, template
        for _ in range(200):
            text = template.format(ref=123456, **corpus._fields(rng))
            assert MIN_WORDS <= word_count(text) <= MAX_WORDS, text
            assert "{" not in text and "}" not in text


def test_sentences_are_unique_within_a_run():
    texts = [Corpus(3).text(seq) for seq in range(20000)]
    assert len(set(texts)) == len(texts)


def test_reference_number_is_unique_per_request_and_in_the_text():
    c = Corpus(11)
    refs = [c.ref(seq) for seq in range(0, REF_SPACE, 97)]
    assert len(set(refs)) == len(refs)
    assert all(100000 <= r <= 999999 for r in refs)
    # A full pass over the space has no repeat (the stride is coprime with it).
    assert len({c.ref(seq) for seq in range(REF_SPACE)}) == REF_SPACE
    for seq in range(200):
        assert str(c.ref(seq)) in c.text(seq)


def test_deterministic_given_a_seed():
    assert [Corpus(9).text(s) for s in range(100)] == [Corpus(9).text(s) for s in range(100)]
    assert sentence(9, 17) == Corpus(9).text(17) == Corpus(9)(17)


def test_different_seeds_give_different_texts():
    a = [Corpus(1).text(s) for s in range(500)]
    b = [Corpus(2).text(s) for s in range(500)]
    assert not set(a) & set(b)


def test_covers_the_realistic_kinds():
    texts = " ".join(Corpus(4).text(s) for s in range(2000))
    for needle in ("order", "ticket", "invoice", "appointment", "Flight", "$", "a.m.", "p.m."):
        assert needle in texts
    assert re.search(r"\b(January|February|March|April|May|June|July|August|September|October"
                     r"|November|December) \d{1,2}\b", texts)


@pytest.mark.parametrize("bad", [-1, 1.5, "3", True])
def test_bad_seq_refused(bad):
    with pytest.raises(ValueError):
        Corpus(1).ref(bad)


@pytest.mark.parametrize("bad", ["1", 1.0, None, True])
def test_bad_seed_refused(bad):
    with pytest.raises(TypeError):
        Corpus(bad)
