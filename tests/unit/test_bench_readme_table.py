"""`python -m bench.readme_table`: the tables of docs/benchmarks.md from a results file, and its command line."""

from __future__ import annotations

import json

import pytest
from bench import readme_table

ROW = {
    "scenario": "list: page 1 of 500",
    "database": "postgres",
    "workers": 1,
    "concurrency": 1,
    "requests": 100,
    "errors": 0,
    "requests_per_s": 300.0,
    "p50_ms": 3.1,
    "p99_ms": 8.0,
    "server_cpu_ms_per_request": 1.8,
}


def test_help_describes_the_command_instead_of_reading_a_file_named_help(capsys):
    with pytest.raises(SystemExit) as exited:
        readme_table.main(["--help"])
    assert exited.value.code == 0
    shown = capsys.readouterr().out
    assert shown.startswith("usage: python -m bench.readme_table") and "results file" in shown


def test_a_missing_results_file_is_one_line_naming_it(tmp_path, capsys):
    missing = tmp_path / "http.json"
    assert readme_table.main([str(missing)]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"error: cannot read {missing}") and "python -m bench" in line


def test_a_results_file_becomes_the_targets_table(tmp_path, capsys):
    results = tmp_path / "http.json"
    report = {"machine": "2 x test cpu", "seconds": 75, "generated_at": "2026-12-05", "results": [ROW]}
    results.write_text(json.dumps(report))
    assert readme_table.main([str(results)]) == 0
    shown = capsys.readouterr().out
    assert "| list: page 1 of 500 | ≤ 3 ms | 1.8 |" in shown


def test_the_workers_table_names_the_cores_of_the_machine_it_ran_on(tmp_path, capsys):
    """The ceiling of 2 processes over 1 is worked out for the machine's own cores (the report's "N x CPU")."""
    rows = [
        {
            **ROW,
            "workers": workers,
            "concurrency": concurrency,
            "server_cores": 1.0,
            "client_cpu_ms_per_request": 0.05,
            "stream_calls_per_request": 0.0,
            "sql_statements_per_request": 1.0,
            "db_round_trips_per_request": 1.0,
        }
        for workers in (1, 2)
        for concurrency in (1, 16, 64)
    ]
    results = tmp_path / "http.json"
    report = {"machine": "4 x test cpu (x86_64)", "seconds": 75, "generated_at": "2026-12-05", "results": rows}
    results.write_text(json.dumps(report))
    assert readme_table.main([str(results)]) == 0
    shown = capsys.readouterr().out
    assert "ceiling on 4 cores" in shown and "ceiling on 2 cores" not in shown
