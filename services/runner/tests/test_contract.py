import json
import re

import pytest

from airlab_runner.contract import ContractError, output_files, parse_metric_line, read_metrics, read_result


def write(tmp_path, name, text):
    (tmp_path / name).write_text(text)


def test_metric_lines_give_one_point_per_metric():
    points = parse_metric_line('{"step": 3, "loss": 0.5, "accuracy": 0.9}', 4)
    assert [(p.name, p.value, p.step) for p in points] == [("loss", 0.5, 3), ("accuracy", 0.9, 3)]
    assert parse_metric_line('{"loss": 1}', 7)[0].step == 6


@pytest.mark.parametrize(
    "line",
    ["not json", "[1, 2]", '{"step": -1, "loss": 1}', '{"loss": "high"}', '{"loss": NaN}', '{"step": true}'],
)
def test_bad_metric_lines_are_named(line):
    with pytest.raises(ContractError, match=r"line 2\b"):
        parse_metric_line(line, 2)


def test_result_must_follow_the_schema(tmp_path):
    with pytest.raises(ContractError, match=r"no result\.json"):
        read_result(tmp_path)
    for bad, problem in [
        ("{", "not valid JSON"),
        ("[]", "JSON object"),
        ('{"metrics": {}, "seed": 0, "duration_seconds": 1}', "non-empty"),
        ('{"metrics": {"acc": "x"}, "seed": 0, "duration_seconds": 1}', "finite number"),
        ('{"metrics": {"acc": 1}, "seed": "0", "duration_seconds": 1}', "seed"),
        ('{"metrics": {"acc": 1}, "seed": 0, "duration_seconds": -1}', "duration_seconds"),
    ]:
        write(tmp_path, "result.json", bad)
        with pytest.raises(ContractError, match=re.escape(problem)):
            read_result(tmp_path)
    write(
        tmp_path,
        "result.json",
        json.dumps({"metrics": {"acc": 1}, "seed": 3, "duration_seconds": 2, "note": "x"}),
    )
    result = read_result(tmp_path)
    assert (result.metrics, result.seed, result.duration_seconds, result.extra) == (
        {"acc": 1.0},
        3,
        2.0,
        {"note": "x"},
    )


def test_oversized_outputs_are_refused(tmp_path):
    write(tmp_path, "result.json", " " * (2 << 20))
    with pytest.raises(ContractError, match="larger"):
        read_result(tmp_path)
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "big.bin").write_bytes(b"x" * 2048)
    with pytest.raises(ContractError, match=r"more than the 0\.0 MiB one job may keep"):
        output_files(tmp_path, max_bytes=1024)
    # The cap is on the total: files each within it, together over it, are refused too.
    (tmp_path / "models" / "big.bin").write_bytes(b"x" * 600)
    (tmp_path / "models" / "big2.bin").write_bytes(b"x" * 600)
    with pytest.raises(ContractError, match=r"hold 0\.0 MiB, more than"):
        output_files(tmp_path, max_bytes=1024)
    assert len(output_files(tmp_path, max_bytes=1200)) == 2


def test_links_out_of_the_work_dir_are_not_collected(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "ok.bin").write_bytes(b"1")
    (tmp_path / "models" / "passwd").symlink_to("/etc/passwd")
    assert [p.name for p in output_files(tmp_path, 1 << 20)] == ["ok.bin"]
    write(tmp_path, "metrics.jsonl", '{"loss": 1}\n\n{"loss": 0.5}\n')
    assert len(read_metrics(tmp_path)) == 2
