"""The realistic drill corpus: 4-25 word sentences, unique per request, deterministic per seed."""

import json
import random
import re
import time

import pytest
from tts_drill import corpus, loadgen
from tts_drill.corpus import MAX_WORDS, MIN_WORDS, REF_SPACE, Corpus, sentence, word_count
from tts_drill.loadgen import LoadGenerator
from tts_drill_testlib import SwitchableServer


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


# --------------------------------------------------------------------------------------------
# The load generator with the realistic corpus
# --------------------------------------------------------------------------------------------

def test_loadgen_sends_the_corpus_in_sequence(tmp_path):
    with SwitchableServer() as server:
        generator = LoadGenerator(server.url, str(tmp_path / "r.jsonl"), rate=100, max_requests=30,
                                  texts=Corpus(21))
        summary = generator.run()
    assert generator.error is None and summary["ok"] == 30
    sent = sorted(body["text"] for _headers, body in server.received)
    assert sent == sorted(Corpus(21).text(seq) for seq in range(30))
    assert len(set(sent)) == 30


def test_loadgen_cli_realistic_corpus_records_its_seed(tmp_path, capsys):
    with SwitchableServer() as server:
        code = loadgen.main(["--url", server.url, "--rate", "50", "--max-requests", "4", "--corpus",
                             "realistic", "--seed", "8", "--out", str(tmp_path / "r.jsonl")])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert summary["corpus"] == {"name": "realistic", "seed": 8} and summary["ok"] == 4
    assert sorted(b["text"] for _h, b in server.received) == sorted(sentence(8, s) for s in range(4))


def test_loadgen_cli_default_seed_differs_between_runs(tmp_path, capsys):
    seeds = []
    with SwitchableServer() as server:
        for run in range(2):
            assert loadgen.main(["--url", server.url, "--rate", "50", "--max-requests", "1", "--corpus",
                                 "realistic", "--out", str(tmp_path / f"r{run}.jsonl")]) == 0
            seeds.append(json.loads(capsys.readouterr().out.splitlines()[-1])["corpus"]["seed"])
            time.sleep(0.01)
    assert seeds[0] != seeds[1]


def test_loadgen_cli_realistic_excludes_a_texts_file(tmp_path, capsys):
    texts = tmp_path / "t.txt"
    texts.write_text("Hello.\n")
    with pytest.raises(SystemExit) as exited:
        loadgen.main(["--url", "http://127.0.0.1:9/tts", "--corpus", "realistic", "--texts-file", str(texts),
                      "--out", str(tmp_path / "r.jsonl")])
    assert exited.value.code == 2 and "exclude each other" in capsys.readouterr().err
