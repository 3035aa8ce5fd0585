"""The report of a verification run: a terminal table, JSON, JUnit XML."""

from __future__ import annotations

import json
import shutil
import textwrap
import xml.etree.ElementTree as ET

from harness.proofs.verify.runner import Report

MARKS = {"passed": "PASS", "failed": "FAIL", "error": "ERROR", "skipped": "SKIP"}


def to_json(report: Report) -> dict:
    """``{"ok", "target": {...}, "checks": [...], "summary": {...}}``."""
    return {
        "ok": report.ok,
        "target": {
            "server_version": report.server_version,
            "provider": report.provider,
            "migrations": list(report.migrations),
        },
        "checks": [
            {
                "id": r.id,
                "category": r.category,
                "status": r.status,
                "detail": r.detail,
                "seconds": round(r.seconds, 3),
            }
            for r in report.results
        ],
        "summary": report.summary,
    }


def write_json(report: Report, path: str) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(to_json(report), fh, indent=2)
        fh.write("\n")


def to_junit(report: Report) -> ET.ElementTree:
    """One ``testsuite`` named ``harness verify``, one ``testcase`` per check."""
    s = report.summary
    root = ET.Element(
        "testsuites",
        name="harness verify",
        tests=str(len(report.results)),
        failures=str(s["failed"]),
        errors=str(s["error"]),
        skipped=str(s["skipped"]),
        time=f"{report.seconds:.3f}",
    )
    suite = ET.SubElement(
        root,
        "testsuite",
        name="harness verify",
        tests=str(len(report.results)),
        failures=str(s["failed"]),
        errors=str(s["error"]),
        skipped=str(s["skipped"]),
        time=f"{report.seconds:.3f}",
    )
    props = ET.SubElement(suite, "properties")
    ET.SubElement(props, "property", name="server_version", value=report.server_version)
    ET.SubElement(props, "property", name="provider", value=report.provider)
    ET.SubElement(props, "property", name="migrations", value=",".join(report.migrations))
    for r in report.results:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"harness.proofs.verify.{r.category}",
            name=r.id,
            time=f"{r.seconds:.3f}",
        )
        first_line = r.detail.splitlines()[0][:200] if r.detail else r.status
        if r.status == "failed":
            ET.SubElement(case, "failure", message=first_line, type="CheckFailed").text = r.detail
        elif r.status == "error":
            ET.SubElement(case, "error", message=first_line, type="CheckError").text = r.detail
        elif r.status == "skipped":
            ET.SubElement(case, "skipped", message=first_line)
        else:
            ET.SubElement(case, "system-out").text = r.detail
    ET.indent(root)
    return ET.ElementTree(root)


def write_junit(report: Report, path: str) -> None:
    to_junit(report).write(path, encoding="utf-8", xml_declaration=True)


def table(report: Report, width: int | None = None) -> str:
    """check | status | evidence | seconds, evidence wrapped to the terminal."""
    width = width or shutil.get_terminal_size((120, 24)).columns
    id_w = max([len("check")] + [len(r.id) for r in report.results])
    fixed = id_w + 2 + 5 + 2 + 2 + 7
    ev_w = max(30, width - fixed)
    lines = [
        f"{'check':<{id_w}}  {'status':<5}  {'evidence':<{ev_w}}  {'seconds':>7}",
        f"{'-' * id_w}  {'-' * 5}  {'-' * ev_w}  {'-' * 7}",
    ]
    for r in report.results:
        wrapped = textwrap.wrap(" ".join(r.detail.split()), ev_w) or [""]
        wrapped = wrapped[:6] + (["..."] if len(wrapped) > 6 else [])
        lines.append(
            f"{r.id:<{id_w}}  {MARKS[r.status]:<5}  {wrapped[0]:<{ev_w}}  {r.seconds:>7.2f}"
        )
        lines.extend(f"{'':<{id_w}}  {'':<5}  {more}" for more in wrapped[1:])
    s = report.summary
    verdict = "OK" if report.ok else "NOT OK"
    lines.append("")
    lines.append(
        f"{verdict}: {s['passed']} passed, {s['failed']} failed, {s['error']} error, "
        f"{s['skipped']} skipped in {report.seconds:.1f} s "
        f"(PostgreSQL {report.server_version}, {report.provider})"
    )
    return "\n".join(lines)
