"""`onecrew-chat import users|companies|members FILE`: formats, bad rows, idempotence and resuming, on both databases."""

from __future__ import annotations

import gzip

from onecrew_chat.models import Company, CompanyMember, User
from tests.integration.directory_files import count, csv_bytes, jsonl, run_import, summary, table, users, write
from tests.support import new_id


async def test_bad_rows_are_listed_by_line_the_good_ones_imported_and_a_second_run_changes_nothing(
    tmp_path, database_url
):
    good = users(3)
    rows = [
        good[0],
        {"id": new_id(), "name": "Bad Category", "category": "x" * 40},
        good[1],
        {"id": "not-a-uuid", "name": "Bad Id"},
        {"id": good[0]["id"], "name": "Repeated"},
        good[2],
        [1, 2],
    ]
    path = write(tmp_path / "users.jsonl", jsonl(rows, raw_lines={3: "{not json", 5: ""}))

    first = run_import(tmp_path, database_url, "users", str(path))
    assert first.returncode == 1, first.stderr
    assert "Imported users from" in first.stdout and "3 created, 0 updated, 0 unchanged, 5 rejected" in first.stdout
    rejected = [line.strip() for line in first.stdout.splitlines() if line.startswith("  line ")]
    assert rejected == [
        "line 2: category: String should have at most 32 characters",
        "line 3: is not valid JSON (Expecting property name enclosed in double quotes at column 2)",
        "line 6: id: must be a uuid, got 'not-a-uuid'",
        "line 7: repeats the id of line 1; only the first one is imported",
        "line 9: must be a JSON object with id, name, image_url, category",
    ]
    stored = await table(database_url, User.id, User.name, User.image_url, User.category)
    assert stored == sorted((u["id"], u["name"], u["image_url"], u["category"]) for u in good)

    again = run_import(tmp_path, database_url, "users", str(path), "--json")
    assert again.returncode == 1
    result = summary(again)
    assert {k: result[k] for k in ("read", "created", "updated", "unchanged", "rejected", "changed")} == {
        "read": 8,
        "created": 0,
        "updated": 0,
        "unchanged": 3,
        "rejected": 5,
        "changed": False,
    }
    assert [r["line"] for r in result["rejections"]] == [2, 3, 6, 7, 9]

    clean = write(tmp_path / "clean.jsonl", jsonl(good))
    text = run_import(tmp_path, database_url, "users", str(clean))
    assert text.returncode == 0, text.stdout + text.stderr
    assert "0 created, 0 updated, 3 unchanged, 0 rejected" in text.stdout
    assert "Nothing changed: every valid row was already in the directory as given." in text.stdout


async def test_every_kind_from_csv_jsonl_gzip_and_standard_input(tmp_path, database_url):
    people = users(2)
    companies = [
        {"id": new_id(), "name": "Sat Education", "logo_url": None, "subcategory": "academy"},
        {"id": new_id(), "name": 'Lolo, "the" Academy', "logo_url": "https://logo.example/l.png", "subcategory": ""},
    ]
    members = [
        {
            "company_id": companies[0]["id"],
            "user_id": people[0]["id"],
            "role": "owner",
            "invitation_status": "accepted",
        },
        {
            "company_id": companies[1]["id"].upper(),
            "user_id": people[1]["id"],
            "role": "admin",
            "invitation_status": "pending",
        },
    ]
    user_file = write(tmp_path / "users.csv", csv_bytes(people, ["id", "name", "image_url", "category"]))
    company_file = write(tmp_path / "companies.csv.gz", csv_bytes(companies, ["subcategory", "logo_url", "name", "id"]))
    member_stdin = gzip.compress(jsonl(members))

    for args, stdin in (
        (("users", str(user_file)), None),
        (("companies", str(company_file)), None),
        (("members", "-", "--format", "jsonl"), member_stdin),
    ):
        done = run_import(tmp_path, database_url, *args, "--json", stdin=stdin)
        assert done.returncode == 0, done.stdout + done.stderr
        assert summary(done)["created"] == 2 and summary(done)["rejected"] == 0

    assert await table(database_url, Company.id, Company.name, Company.logo_url, Company.subcategory) == sorted(
        (c["id"], c["name"], c["logo_url"], None)
        if not c["subcategory"]
        else (c["id"], c["name"], c["logo_url"], c["subcategory"])
        for c in companies
    )
    assert await table(database_url, CompanyMember.company_id, CompanyMember.user_id, CompanyMember.role) == sorted(
        (m["company_id"].lower(), m["user_id"], m["role"]) for m in members
    )
    # the same memberships as CSV on standard input, one now an owner, one naming a company nobody imported
    changed = [
        {**members[1], "company_id": companies[1]["id"], "role": "owner"},
        {**members[0], "company_id": new_id()},
    ]
    columns = ["company_id", "user_id", "role", "invitation_status"]
    done = run_import(
        tmp_path, database_url, "members", "-", "--format", "csv", "--json", stdin=csv_bytes(changed, columns)
    )
    assert done.returncode == 1
    assert summary(done)["updated"] == 1
    assert summary(done)["rejections"] == [{"line": 3, "error": f"Company not found: {changed[1]['company_id']}"}]


async def test_an_interrupted_import_keeps_its_batches_and_the_next_run_finishes_it(tmp_path, database_url):
    rows = users(2500)
    whole = gzip.compress(jsonl(rows))
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(whole[: len(whole) * 3 // 4])  # the download stopped three quarters in

    stopped = run_import(tmp_path, database_url, "users", str(cut), "--batch", "1000")
    assert stopped.returncode == 1
    assert "Stopped before the end: the file could not be read to its end" in stopped.stdout
    committed = await count(database_url, User)
    assert 1000 <= committed < 2500

    full = tmp_path / "users.jsonl.gz"
    full.write_bytes(whole)
    resumed = run_import(tmp_path, database_url, "users", str(full), "--batch", "1000", "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert summary(resumed) | {"seconds": 0} == summary(resumed) | {
        "created": 2500 - committed,
        "unchanged": committed,
        "updated": 0,
        "rejected": 0,
        "seconds": 0,
    }
    assert await count(database_url, User) == 2500


def test_refused_inputs_exit_2_with_one_line(tmp_path, sqlite_only_url):
    write(tmp_path / "members.csv", b"company_id,user\nx,y\n")
    write(tmp_path / "users.txt", b"{}\n")
    (tmp_path / "plain.jsonl.gz").write_bytes(b'{"id": 1}\n')
    (tmp_path / "cut.jsonl.gz").write_bytes(gzip.compress(b'{"id": 1}\n' * 1000)[:30])
    write(tmp_path / "utf16.csv", "id,name\nx,Amr\n".encode("utf-16"))
    cases = {
        ("members", "members.csv"): "the CSV header has no column user_id, role, invitation_status",
        ("users", "plain.jsonl.gz"): "plain.jsonl.gz is named .gz but is not gzip-compressed",
        ("users", "cut.jsonl.gz"): "the file could not be read to its end",
        ("users", "utf16.csv"): "utf16.csv is not UTF-8 text (line 1 is not UTF-8",
        ("users", "users.txt"): "cannot tell the format of 'users.txt' from its suffix",
        ("users", "missing.jsonl"): "cannot open missing.jsonl: No such file or directory",
        ("users", "-"): "standard input has no suffix: say --format jsonl or --format csv",
        ("users",): "give either a FILE (or - for standard input) or --from-sql URL",
    }
    for args, words in cases.items():
        done = run_import(tmp_path, sqlite_only_url, *args)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert words in done.stderr, (args, done.stderr)


def test_a_source_without_rows_exits_3_nothing_to_import(tmp_path, sqlite_only_url):
    """Not 0 (a script would take an empty export for a successful import), not 1 or 2 (nothing is wrong with it)."""
    write(tmp_path / "empty.jsonl", b"")
    write(tmp_path / "header.csv.gz", b"id,name,image_url,category\n\n")
    write(tmp_path / "blank.jsonl", b"\n  \n")
    for name in ("empty.jsonl", "header.csv.gz", "blank.jsonl"):
        done = run_import(tmp_path, sqlite_only_url, "users", name)
        assert done.returncode == 3, (name, done.stdout, done.stderr)
        assert f"Nothing to import: {name} has no users" in done.stdout
    done = run_import(tmp_path, sqlite_only_url, "users", "empty.jsonl", "--json")
    assert done.returncode == 3 and summary(done)["read"] == 0


async def test_a_long_line_and_many_bad_rows_stay_bounded_and_are_counted(tmp_path, sqlite_only_url):
    """A line past 1 MiB is rejected by its number; the summary lists the first 1,000 rejections and counts all."""
    good = users(2)
    long_line = '{"id": "%s", "name": "%s"}' % (new_id(), "x" * (2 << 20))
    path = write(tmp_path / "users.jsonl.gz", jsonl([good[0], long_line, *['{"name": "No Id"}'] * 1200, good[1]]))

    done = run_import(tmp_path, sqlite_only_url, "users", str(path), "--json")
    assert done.returncode == 1, done.stderr
    result = summary(done)
    assert (result["created"], result["rejected"], result["rejections_omitted"]) == (2, 1201, 201)
    assert len(result["rejections"]) == 1000
    assert result["rejections"][0] == {
        "line": 2,
        "error": "is longer than 1 MiB (the --max-line-bytes limit); it was not read",
    }
    assert result["rejections"][-1]["line"] == 1001

    text = run_import(tmp_path, sqlite_only_url, "users", str(path), "--max-rejections", "2")
    assert text.returncode == 1
    listed = [line.strip() for line in text.stdout.splitlines() if line.startswith("  ")]
    assert listed == [
        "line 2: is longer than 1 MiB (the --max-line-bytes limit); it was not read",
        "line 3: id: is required",
        "... and 1,199 more rejected lines, not listed (--max-rejections).",
    ]
    assert "Rejected lines (the first 2 of 1,201; fix them and run the command again):" in text.stdout
    assert await count(sqlite_only_url, User) == 2

    wider = run_import(tmp_path, sqlite_only_url, "users", str(path), "--json", "--max-line-bytes", str(4 << 20))
    assert summary(wider)["renamed"] == [{"line": 2, "note": f"name of {2 << 20} characters: cut to 255"}]
    assert summary(wider)["rejections"][0] == {"line": 3, "error": "id: is required"}
