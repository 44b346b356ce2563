"""Mapping files through the real CLI: ``bridge map`` and the mapping checks of ``bridge check``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import yaml

from tests.support.configs import write_config
from tests.support.daemon import ROOT, run_cli

FIXTURES = ROOT / "tests" / "fixtures" / "mappings"
EXAMPLE = FIXTURES / "retailcrm_order_to_onec.yaml"
ORDER = FIXTURES / "retailcrm_order.json"
BROKEN = FIXTURES / "broken" / "shop_order_to_crm.yaml"
VALID = """\
version: 1
source: shop
entity: order
target: crm
fields:
  - {to: id, from: id, required: true}
"""


def config_with_routes(tmp_path: Path, *routes: dict[str, Any], port: int = 0) -> Path:
    """The test config (source shop, target crm) with these ``mirror.routes``."""
    path = write_config(tmp_path, port=port)
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    config["mirror"]["routes"] = list(routes)
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def route(mapping: str, entity: str = "order") -> dict[str, Any]:
    return {"source": "shop", "entity": entity, "targets": ["crm"], "mapping": mapping}


def mapping_lines(err: str, path: Path) -> list[tuple[int, str]]:
    """(line, rest) of every problem reported in ``path``."""
    found = []
    for line in err.splitlines():
        if line.startswith(f"{path}:"):
            number, rest = line[len(f"{path}:") :].split(": ", 1)
            found.append((int(number), rest))
    return found


async def test_check_names_all_three_mapping_mistakes_with_their_lines(tmp_path: Path) -> None:
    (tmp_path / "mappings").mkdir()
    copy = Path(shutil.copy(BROKEN, tmp_path / "mappings"))
    config = config_with_routes(tmp_path, route("mappings/shop_order_to_crm.yaml"))
    code, out, err = await run_cli(config, "check")
    assert code == 1, out + err
    found = mapping_lines(err, copy)
    assert [(line, rest.split(":")[0]) for line, rest in found] == [
        (12, "fields[1].transform"),
        (13, "fields[2].from"),
        (14, "fields[3].table"),
    ]
    assert "unknown transform 'phnoe'" in found[0][1]
    assert "malformed path 'items[0]..sku'" in found[1][1]
    assert "no value table 'payment_types'" in found[2][1]
    assert err.splitlines()[-1] == f"3 problem(s) in {config}"


async def test_check_passes_with_a_valid_mapping(tmp_path: Path) -> None:
    (tmp_path / "mappings").mkdir()
    (tmp_path / "mappings" / "shop_order_to_crm.yaml").write_text(VALID, encoding="utf-8")
    config = config_with_routes(tmp_path, route("mappings/shop_order_to_crm.yaml"))
    code, out, err = await run_cli(config, "check")
    assert (code, err) == (0, "")
    assert "OK" in out


async def test_check_names_routes_whose_file_is_missing_or_disagrees(tmp_path: Path) -> None:
    (tmp_path / "shop_order_to_crm.yaml").write_text(VALID, encoding="utf-8")
    config = config_with_routes(
        tmp_path,
        route("mappings/nope.yaml"),
        route("shop_order_to_crm.yaml", entity="customer"),
    )
    code, out, _ = await run_cli(config, "check", "--json")
    assert code == 1
    text = config.read_text(encoding="utf-8").splitlines()
    first, second = (n for n, line in enumerate(text, 1) if line.lstrip().startswith("mapping:"))
    assert json.loads(out)["problems"] == [
        f"{config}:{first}: mirror.routes[0].mapping: no such file"
        f" ({tmp_path / 'mappings' / 'nope.yaml'})",
        f"{config}:{second}: mirror.routes[1].mapping: shop_order_to_crm.yaml has entity"
        " 'order', but the route's entity is 'customer'",
    ]


async def test_check_reads_the_mappings_even_when_the_config_is_wrong(tmp_path: Path) -> None:
    (tmp_path / "mappings").mkdir()
    copy = Path(shutil.copy(BROKEN, tmp_path / "mappings"))
    config = config_with_routes(tmp_path, route("mappings/shop_order_to_crm.yaml"), port=70000)
    code, _, err = await run_cli(config, "check")
    assert code == 1
    assert "http.port" in err
    assert [line for line, _ in mapping_lines(err, copy)] == [12, 13, 14]


async def test_map_prints_the_mapped_document(tmp_path: Path) -> None:
    code, out, err = await run_cli(tmp_path / "config.yaml", "map", str(EXAMPLE), str(ORDER))
    assert (code, err) == (0, "")
    document = json.loads(out)
    assert document["Status"] == "Собирается"
    assert '"Собирается"' in out  # UTF-8 as is, not \\u escapes
    assert document["Customer"] == {"Phone": "+79000000001", "Name": "Анна Петрова"}
    assert document["Items"] == [{"Sku": "SKU-1", "Quantity": 2, "Price": "999.75"}]


async def test_map_says_why_a_change_is_skipped(tmp_path: Path) -> None:
    order = json.loads(ORDER.read_text(encoding="utf-8"))
    order["site"] = "other"
    sample = tmp_path / "order.json"
    sample.write_text(json.dumps(order), encoding="utf-8")
    code, out, _ = await run_cli(tmp_path / "config.yaml", "map", str(EXAMPLE), str(sample))
    assert code == 0
    assert out.strip() == "skipped: filters[0]: site is 'other', not one of 'shop'"
    code, out, _ = await run_cli(
        tmp_path / "config.yaml", "map", str(EXAMPLE), str(sample), "--json"
    )
    assert (code, json.loads(out)["skipped"]) == (
        0,
        "filters[0]: site is 'other', not one of 'shop'",
    )


async def test_map_lists_every_problem_of_a_broken_mapping(tmp_path: Path) -> None:
    code, out, err = await run_cli(tmp_path / "config.yaml", "map", str(BROKEN), str(ORDER))
    assert (code, out) == (1, "")
    assert [line for line, _ in mapping_lines(err, BROKEN)] == [12, 13, 14]


async def test_map_names_the_rule_a_sample_breaks(tmp_path: Path) -> None:
    order = json.loads(ORDER.read_text(encoding="utf-8"))
    order["createdAt"] = "вчера"
    sample = tmp_path / "order.json"
    sample.write_text(json.dumps(order, ensure_ascii=False), encoding="utf-8")
    code, out, err = await run_cli(tmp_path / "config.yaml", "map", str(EXAMPLE), str(sample))
    assert (code, out) == (1, "")
    assert f"{EXAMPLE}:28: fields[5] Date: createdAt: 'вчера' is not a date" in err
    assert "Traceback" not in err


async def test_map_usage_errors_name_the_input(tmp_path: Path) -> None:
    bad = tmp_path / "order.json"
    bad.write_text('{"id": 1,\n  "site": }', encoding="utf-8")
    code, _, err = await run_cli(tmp_path / "config.yaml", "map", str(EXAMPLE), str(bad))
    assert code == 2
    assert f"{bad}:2:11: not valid JSON" in err
    code, _, err = await run_cli(tmp_path / "config.yaml", "map", str(EXAMPLE), "missing.json")
    assert code == 2
    assert "missing.json: cannot read" in err
    code, _, err = await run_cli(tmp_path / "config.yaml", "map", str(EXAMPLE), "-", stdin=b"[1]")
    assert code == 2
    assert "stdin: must hold one JSON object" in err
    assert "Traceback" not in err


async def test_map_shows_the_create_and_with_edit_the_write_back(tmp_path: Path) -> None:
    flow = tmp_path / "shop_order_to_crm.yaml"
    flow.write_text(VALID + "  - {to: items, from: lines, when: create}\n", encoding="utf-8")
    sample = tmp_path / "order.json"
    sample.write_text('{"id": 7, "lines": [{"sku": "SKU-1"}]}', encoding="utf-8")
    config = tmp_path / "config.yaml"
    code, out, err = await run_cli(config, "map", str(flow), str(sample))
    assert (code, err, json.loads(out)) == (0, "", {"id": 7, "items": [{"sku": "SKU-1"}]})
    code, out, err = await run_cli(config, "map", str(flow), str(sample), "--edit")
    assert (code, err, json.loads(out)) == (0, "", {"id": 7})
