"""``xent detect`` on the bundled example, in every file format, and on bad files and flags."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from xent_estimators.detect_files import auroc

from xent_core.cli import main

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "detect"
FILES = ("tokens.jsonl", "logprobs.jsonl", "corpus.jsonl")


def run(capsys, *args):
    code = main(["detect", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


def example_args(*extra):
    return (EXAMPLE / "tokens.jsonl", EXAMPLE / "logprobs.jsonl",
            "--ref-corpus", EXAMPLE / "corpus.jsonl", "--vocab-size", 32, *extra)  # fmt: skip


def lines(name):
    return [json.loads(s) for s in (EXAMPLE / name).read_text().splitlines()]


def strict(text):
    def refuse(token):
        raise ValueError(token)

    return json.loads(text, parse_constant=refuse)


def test_the_example_is_regenerated_byte_for_byte(tmp_path):
    subprocess.run(
        [sys.executable, str(EXAMPLE / "make_example.py"), "--out", str(tmp_path)],
        check=True, timeout=120,
    )  # fmt: skip
    for name in FILES:
        assert (tmp_path / name).read_bytes() == (EXAMPLE / name).read_bytes(), name
    assert sum((EXAMPLE / n).stat().st_size for n in FILES) < 16_000


def test_detect_runs_on_the_example(capsys):
    code, out, err = run(capsys, *example_args("--a", 1, "--json"))
    assert code == 0 and err == ""
    res = strict(out)
    assert res["methods"] == ["dc-pdd", "min-k", "min-k++"] and res["skipped"] == {}
    docs = res["documents"]
    assert len(docs) == 12 and all(d["scored_tokens"] == 19 for d in docs)
    assert res["reference"]["vocab_size"] == 32 and res["reference"]["tokens_counted"] == 800
    # independent float64 references for every document, from the files themselves
    counts = np.bincount([i for doc in lines("corpus.jsonl") for i in doc], minlength=32)
    for d, tok, lp in zip(docs, lines("tokens.jsonl"), lines("logprobs.jsonl")):
        ids, logp = tok["ids"][1:], np.array(lp["logprobs"])  # first token unscored
        assert d["label"] == tok["label"]
        assert d["min-k"] == pytest.approx(np.sort(logp)[: int(19 * 0.2)].mean(), rel=1e-12)
        z = (logp + np.array(lp["entropy"])) / np.sqrt(lp["var_logp"])
        assert d["min-k++"] == pytest.approx(np.sort(z)[:3].mean(), rel=1e-12)
        seen, alphas = set(), []
        for i, v in zip(ids, logp):
            if i not in seen:
                seen.add(i)
                alphas.append(min(math.exp(v) * math.log((800 + 32) / (counts[i] + 1)), 1.0))
        assert d["dc-pdd"] == pytest.approx(np.mean(alphas), rel=1e-12)
    # the members are told apart by every score on this toy
    assert res["auroc"] == {"dc-pdd": 1.0, "min-k": 1.0, "min-k++": 1.0}
    code, out, _ = run(capsys, *example_args("--a", 1))
    assert code == 0 and "AUROC: dc-pdd 1.000" in out


def test_array_formats_and_a_saved_table_give_the_same_scores(capsys, tmp_path):
    _, out, _ = run(capsys, *example_args("--json"))
    want = strict(out)["documents"]
    toks = [t["ids"] for t in lines("tokens.jsonl")]
    lps = lines("logprobs.jsonl")
    # padded (B, T) arrays: the last document cut short, padded with -1 and NaN
    ids = np.full((12, 20), -1, dtype=np.int32)
    arrays = {k: np.full((12, 19), np.nan) for k in ("logprobs", "entropy", "var_logp")}
    for b, (t, lp) in enumerate(zip(toks, lps)):
        n = 20 if b < 11 else 15
        ids[b, :n] = t[:n]
        for k, a in arrays.items():
            a[b, : n - 1] = lp[k][: n - 1]
    np.save(tmp_path / "ids.npy", ids)
    np.savez(tmp_path / "lp.npz", **arrays)
    table = tmp_path / "counts.npy"
    code, out, err = run(
        capsys, tmp_path / "ids.npy", tmp_path / "lp.npz", "--ref-corpus",
        EXAMPLE / "corpus.jsonl", "--vocab-size", 32, "--save-counts", table, "--json",
    )  # fmt: skip
    assert code == 0, err
    got = strict(out)["documents"]
    for g, w in zip(got[:11], want[:11]):
        assert g == {**{k: v for k, v in w.items() if k != "label"}}
    assert got[11]["scored_tokens"] == 14
    code, out, _ = run(capsys, *example_args("--json")[:2], "--ref-counts", table, "--json")
    assert code == 0 and strict(out)["documents"] == want
    # log-probs only (.npy): Min-K% alone, the others said skipped
    np.save(tmp_path / "lp.npy", arrays["logprobs"][:11])
    np.save(tmp_path / "ids11.npy", ids[:11])
    code, out, _ = run(capsys, tmp_path / "ids11.npy", tmp_path / "lp.npy", "--json")
    res = strict(out)
    assert (
        code == 0 and res["methods"] == ["min-k"] and set(res["skipped"]) == {"dc-pdd", "min-k++"}
    )
    assert [d["min-k"] for d in res["documents"]] == [d["min-k"] for d in want[:11]]


@pytest.mark.parametrize(
    ("setup", "args", "needle"),
    [
        ({"t.jsonl": "[1, 2, 3]\n", "l.jsonl": "[-0.1, -0.2]\n[-0.3]\n"}, (), "1 documents"),
        ({"t.jsonl": "[1, 2, 3]\n", "l.jsonl": "[-0.1]\n"}, (), "1 log-probs for 3 tokens"),
        ({"t.jsonl": "[1, 2]\n", "l.jsonl": "[-0.1, 0.5]\n"}, (), "log-probabilities"),
        ({"t.jsonl": "[1, 2]\n", "l.jsonl": '[-0.1, "x"]\n'}, (), "list of numbers"),
        ({"t.jsonl": "[1, 2]\n", "l.jsonl": '{"entropy": [1]}\n'}, (), "needs 'logprobs'"),
        ({"t.jsonl": "[1, 2.5]\n", "l.jsonl": "[-0.1]\n"}, (), "integers"),
        ({"t.jsonl": '{"ids": [1, 2], "label": 3}\n', "l.jsonl": "[-0.1]\n"}, (), "label"),
        ({"t.jsonl": "[1, 2]\n", "l.txt": "-0.1\n"}, (), "unsupported log-probs file"),
        ({"t.jsonl": "[1, 2]\n", "l.jsonl": "[-0.1]\n"}, ("--k", "0"), "k must lie"),
        ({"t.jsonl": "[1, 2]\n", "l.jsonl": "[-0.1]\n"}, ("--vocab-size", "0"), "vocab-size"),
        ({"t.jsonl": "[1, 9]\n", "l.jsonl": "[-0.1]\n", "c.jsonl": "[1]\n"},
         ("--ref-corpus", "c.jsonl", "--vocab-size", "4"), "outside the frequency table"),
        ({"t.jsonl": "[1, 2]\n", "l.jsonl": "[-0.1]\n", "c.jsonl": "[1]\n"},
         ("--ref-corpus", "c.jsonl", "--ref-counts", "c.npy"), "not both"),
        ({"t.jsonl": "[1, 2]\n", "l.jsonl": "[-0.1]\n"}, ("--save-counts", "x.npy"), "needs --ref"),
        ({"l.jsonl": "[-0.1]\n"}, (), "no such file"),
    ],
)  # fmt: skip
def test_bad_files_and_flags_exit_2_in_one_line(capsys, tmp_path, monkeypatch, setup, args, needle):
    monkeypatch.chdir(tmp_path)
    for name, text in setup.items():
        (tmp_path / name).write_text(text)
    lp = next(n for n in setup if n.startswith("l."))
    code, out, err = run(capsys, "t.jsonl", lp, *args)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and needle in err, err
    code, out, _ = run(capsys, "t.jsonl", lp, *args, "--json")
    assert code == 2 and needle in strict(out)["error"]["message"]


def test_devices_and_directories_are_refused(capsys, tmp_path):
    (tmp_path / "l.jsonl").write_text("[-0.1]\n")
    for bad in (tmp_path, Path("/dev/zero")):
        if not bad.exists():
            continue
        code, _, err = run(capsys, bad, tmp_path / "l.jsonl")
        assert code == 2 and "not a regular file" in err


def test_auroc_matches_scikit_learn():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(4)
    scores = np.round(rng.normal(size=37), 1)  # ties count half
    labels = rng.integers(0, 2, size=37)
    assert auroc(scores, labels) == pytest.approx(roc_auc_score(labels, scores), rel=1e-14)
    assert auroc(scores, np.ones(37)) is None
