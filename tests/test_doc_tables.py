"""Tables the docs quote from generated files (`<!-- table: PATH -->` blocks) are the files' current
content: regenerating a table without syncing the docs fails here (scripts/sync_doc_tables.py)."""

import runpy
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sync = runpy.run_path(str(ROOT / "scripts" / "sync_doc_tables.py"))


def test_docs_quote_the_committed_tables():
    assert sync["main"](["--check"]) == 0


def test_a_stale_block_is_rewritten_from_its_file():
    path = "results/ladder/nav2d/table.md"
    stale = f"text\n<!-- table: {path} -->\n| old | table |\n<!-- /table -->\nmore\n"
    new = sync["synced"](stale)
    assert new == f"text\n<!-- table: {path} -->\n{(ROOT / path).read_text()}<!-- /table -->\nmore\n"
    assert sync["synced"](new) == new


def test_committed_ladder_tables_are_what_their_command_computes():
    """`PLOT_ONLY=1 scripts/ladder.sh` / `scripts/best_bomrl.sh` regenerate the committed tables from
    the committed runs (scripts/ladder_table.py), byte for byte."""
    ladder = runpy.run_path(str(ROOT / "scripts" / "ladder_table.py"))
    for root in ("results/ladder/halfcheetah-dir", "results/ladder/nav2d"):
        assert ladder["table"](ROOT / root) == (ROOT / root / "table.md").read_text(), root
    r0 = [ROOT / f"results/locomotion/halfcheetah-dir-maml-trpo-s{s}" for s in (0, 1)]
    best = ROOT / "results/best/halfcheetah-dir"
    assert ladder["table"](best, r0) == (best / "table.md").read_text()


def test_benchmark_tables_are_rendered_from_their_records():
    """results/bench/NAME.md is what scripts/bench_tables.py renders from NAME.jsonl (the commands'
    own JSON lines), and a changed record makes it stale."""
    bench = runpy.run_path(str(ROOT / "scripts" / "bench_tables.py"))
    assert bench["main"](["--check"]) == 0
    records = sorted((ROOT / "results" / "bench").glob("*.jsonl"))
    assert records
    for path in records:
        assert bench["render"](path) == path.with_suffix(".md").read_text(), path


def _tables_outside_blocks(text: str) -> list[str]:
    """The first line of every markdown table that is not inside a `<!-- table: ... -->` block."""
    found, inside, previous = [], False, ""
    for line in text.splitlines():
        if line.startswith("<!-- table:"):
            inside = True
        elif line.startswith("<!-- /table"):
            inside = False
        elif line.startswith("|") and not previous.startswith("|") and not inside:
            found.append(line)
        previous = line
    return found


def test_measured_speeds_are_generated_tables_only():
    """docs/BENCHMARKS.md and docs/ENVIRONMENTS.md's Meta-World speed quote benchmark records only:
    a table pasted by hand outside a sync block fails here."""
    assert _tables_outside_blocks((ROOT / "docs" / "BENCHMARKS.md").read_text()) == []
    env = (ROOT / "docs" / "ENVIRONMENTS.md").read_text()
    speed = env[env.index("**Speed**"):env.index("## The task-family interface")]
    assert _tables_outside_blocks(speed) == []
    assert _tables_outside_blocks("text\n| a | b |\n| --- | --- |\n") == ["| a | b |"]   # the check can fail


def test_committed_locomotion_tables_are_what_bomrl_plot_writes(tmp_path):
    """`bomrl plot results/locomotion/` writes the tables docs/REPRODUCTION.md quotes (one file per
    table under plots/tables/); recomputed from the committed runs, they are byte for byte the same."""
    from bomrl.workflow.plot import _write_tables, collect, find_runs

    for root, envs in (("locomotion", {"halfcheetah-dir", "halfcheetah-vel", "ant-dir"}),
                       ("locomotion-h200", {"halfcheetah-dir"}), ("conventions", {"halfcheetah-vel"})):
        groups = collect(find_runs([str(ROOT / "results" / root)]))
        out = tmp_path / root
        out.mkdir()
        written = _write_tables(groups, sorted(groups), None, out)
        assert set(written) == {"runs", "training", *(f"pooled-{e}" for e in envs)}
        for path in (out / "tables").iterdir():
            assert path.read_text() == (ROOT / "results" / root / "plots/tables" / path.name).read_text(), path


def test_committed_released_table_is_what_its_script_computes():
    """`PLOT_ONLY=1 scripts/released_protocol.sh` (scripts/released_table.py) regenerates the
    committed table of the released-protocol runs from their committed meta-test files."""
    released = runpy.run_path(str(ROOT / "scripts" / "released_table.py"))
    root = ROOT / "results/released/halfcheetah-dir"
    assert released["table"](root) == (root / "table.md").read_text()


def test_committed_rl2_tables_are_what_their_script_computes():
    rl2 = runpy.run_path(str(ROOT / "scripts" / "rl2_table.py"))
    for name, text in rl2["tables"]().items():
        assert text == (ROOT / "results/rl2" / name).read_text(), name


def test_committed_bomrl_sgd_tables_are_what_their_scripts_compute(tmp_path, monkeypatch, capsys):
    """docs/BASELINES.md's two tables of the 100-iteration runs: scripts/bomrl_sgd_table.py and
    scripts/adaptation_gain.py --table, recomputed from the committed runs."""
    import sys

    sgd = runpy.run_path(str(ROOT / "scripts" / "bomrl_sgd_table.py"))
    assert sgd["table"]() == (ROOT / "results/bomrl-sgd/runs.md").read_text()
    runs = [str(ROOT / f"results/bomrl-sgd/halfcheetah-vel-bomrl-d1-s{s}") for s in (0, 1)] + \
        [str(ROOT / f"results/locomotion/halfcheetah-vel-maml-trpo-s{s}") for s in (0, 1)]
    monkeypatch.setattr(sys, "argv", ["adaptation_gain.py", *runs, "--out", str(tmp_path / "g.png"), "--windows",
                                      "1-10", "21-30", "41-50", "61-70", "81-90", "91-100", "--iterations", "100",
                                      "--table", str(tmp_path / "g.md")])
    runpy.run_path(str(ROOT / "scripts" / "adaptation_gain.py"), run_name="__main__")
    assert (tmp_path / "g.md").read_text() == (ROOT / "results/bomrl-sgd/adaptation_gain.md").read_text()


def test_committed_paired_table_is_what_its_script_computes():
    """REPRODUCTION §8's BO-MRL d3 − MAESN per-seed table: scripts/paired_table.py on the committed runs."""
    paired = runpy.run_path(str(ROOT / "scripts" / "paired_table.py"))
    loco = ROOT / "results" / "locomotion"
    text = paired["table"]([loco / f"halfcheetah-dir-bomrl-d3-s{s}" for s in (0, 1)],
                           [loco / f"halfcheetah-dir-maesn-s{s}" for s in (0, 1)], [1, 2, 3])
    assert text == (loco / "tables" / "halfcheetah-dir-d3-minus-maesn.md").read_text()


def test_committed_window_table_is_what_its_script_computes():
    """BASELINES' armijo-vs-sgd training table: scripts/window_table.py on the committed metrics."""
    window = runpy.run_path(str(ROOT / "scripts" / "window_table.py"))
    runs = [("sgd", ROOT / "results/bomrl-sgd/halfcheetah-vel-bomrl-d1-s1"),
            ("armijo", ROOT / "results/locomotion/halfcheetah-vel-bomrl-d1-s1")]
    text = window["table"](runs, [(11, 20), (31, 40)])
    assert text == (ROOT / "results/bomrl-sgd/armijo-vs-sgd-s1.md").read_text()


def test_committed_hypergradient_check_tables_are_what_their_script_computes():
    """`python scripts/hypergradient_checks.py` writes each table from its committed check JSON
    files; a changed measurement makes the table stale."""
    checks = runpy.run_path(str(ROOT / "scripts" / "hypergradient_checks.py"))
    for root in checks["TABLES"]:
        assert checks["table"](root) == (ROOT / root / "table.md").read_text(), root
    assert checks["main"](["--check"]) == 0


def test_a_check_row_formats_its_measurement():
    checks = runpy.run_path(str(ROOT / "scripts" / "hypergradient_checks.py"))
    m = {"cosine_min": 0.99999, "rel_error_median": 3e-10, "inner_grad_ratio": 0.494, "hyper_rel_residual": float("nan"),
         "inner_kl": 0.0523, "insample_surrogate_gain": 0.1261, "insample_surrogate_gain_se": 0.0061,
         "fresh_surrogate_gain": 0.01834, "fresh_surrogate_gain_se": 0.00512, "fresh_return_gain": 102.6,
         "fresh_return_gain_se": 19.7, "maml_fresh_surrogate_gain": 0.042, "maml_fresh_surrogate_gain_se": 0.006}
    assert checks["row_cells"]("derivative", "x", m) == [
        "x", "1.00", "< 1e-4", "0.49", "–", "0.052", "0.126", "0.0183 ± 0.0051", "0.0420 ± 0.0060"]
    assert checks["row_cells"]("generalisation", "x", m) == ["x", "0.126 ± 0.006", "0.018 ± 0.005", "+103 ± 20",
                                                             "0.052", "0.49"]
    assert checks["row_cells"]("solver", "seed 1 | sgd", m)[:3] == ["seed 1", "sgd", "1.00"]


def test_committed_random_return_table_is_what_its_script_computes():
    rr = runpy.run_path(str(ROOT / "scripts" / "random_returns.py"))
    assert rr["main"](["--check"]) == 0
