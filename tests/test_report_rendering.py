"""Renderings of the report: CSV, a printable HTML page with inline SVG charts, and that page in Chromium."""

import csv
import io
import re
import shutil
import struct
import subprocess
import zlib
from datetime import date

import pytest

from consent.reports.periods import parse_period
from consent.reports.render import report_csv, report_html
from consent.reports.report import compliance_report
from tests.conftest import api_client, give_consent, intake_check, make_referral
from tests.factories import SiteFactory
from tests.helpers import fix_record_keys

ACCENT, PALE, MET_BACKGROUND = (0x00, 0x5E, 0xB8), (0x8F, 0xB8, 0xDE), (0xD5, 0xF0, 0xDD)


@pytest.fixture
def busy(world):
    """Q3 with enough referrals that bars are drawn: 12 voluntary at Kent's site (10 in July), one mandated."""
    for day in range(1, 13):
        r = make_referral(world.therapist, world.site, referred_on=date(2026, 7 if day <= 10 else 8, day))
        give_consent(world.therapist, r, world.template)
        intake_check(world.therapist, r)
    make_referral(world.therapist, world.site, referred_on=date(2026, 8, 20), pathway="mandated_assessment")
    world.pilot.cadence = "monthly"
    world.pilot.save()
    # Record keys fixed, so the figures below do not depend on the draw: each cell key is the cell's count.
    fix_record_keys(1)
    return world


def _get(world, fmt):
    return api_client(world.reviewer).get(f"/api/v1/pilots/{world.pilot.pk}/compliance-report/?period=2026-Q3&format={fmt}")


def test_the_csv_has_one_row_per_figure_and_only_published_values(busy):
    response = _get(busy, "csv")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith("attachment;")
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0] == ["section", "scope", "metric", "category", "value"]
    published = {(r[0], r[1], r[2], r[3]): r[4] for r in rows[1:]}
    # 14 at Kent, 1 at Medway: 15 with cell key 15, (15 + 1515) * 163 mod 256 = 46, mod 7 = 4, +1: 16 -> 15.
    assert published[("figures", "All sites", "referrals_received", "")] == "15"
    assert published[("figures", "All sites", "by_pathway", "mandated_assessment")] == "*"
    assert published[("principles", "All sites", "voluntary_participation", "verdict")] == "not met"
    assert published[("series", "All sites", "referrals_received", "2026-08")] in ("*", "5", "10")
    counts = [r[4] for r in rows[1:] if r[0] in ("figures", "series") and re.fullmatch(r"\d+", r[4])]
    assert counts, "no counts published"
    for value in counts:
        assert int(value) % 5 == 0 and not 1 <= int(value) <= 7, value


def test_the_csv_defuses_text_a_spreadsheet_would_run(world):
    world.site.name = '=HYPERLINK("http://example.invalid")'
    world.site.save()
    text = report_csv(compliance_report(world.pilot, parse_period("2026-Q3")))
    assert "'=HYPERLINK" in text
    assert "\n=HYPERLINK" not in text and ",=HYPERLINK" not in text


def test_the_html_page_puts_the_principle_table_first_and_draws_charts_as_inline_svg(busy):
    response = _get(busy, "html")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/html; charset=utf-8"
    page = response.content.decode()
    assert page.index('id="principles"') < page.index("<svg") < page.index('id="totals"')
    assert page.count("<svg") == 4
    for title in ("Therapy is completely voluntary", "No information is shared", "free to withdraw", "Everyone referred"):
        assert title in page
    # Nothing to fetch: no scripts, no outside stylesheets, fonts or images.
    assert "<script" not in page.lower()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    assert "@import" not in page and "url(http" not in page
    assert "@media print" in page


def test_the_html_page_escapes_names(world):
    world.pilot.sites.add(SiteFactory(name="<script>alert(1)</script>", provider=world.kent))
    page = report_html(compliance_report(world.pilot, parse_period("2026-Q3")))
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def _png_pixels(data: bytes) -> tuple[int, int, list[tuple[int, int, int]]]:
    """Decode an 8-bit RGB or RGBA PNG (what Chromium writes) into its width, height and RGB pixels."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    offset, idat, header = 8, b"", None
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind, body = data[offset + 4 : offset + 8], data[offset + 8 : offset + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        offset += 12 + length
    width, height, depth, colour, *_ = header
    assert depth == 8 and colour in (2, 6), header
    channels = 3 if colour == 2 else 4
    raw, stride = zlib.decompress(idat), width * channels
    previous, pixels, at = bytearray(stride), [], 0
    for _ in range(height):
        kind, line = raw[at], bytearray(raw[at + 1 : at + 1 + stride])
        at += 1 + stride
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up, corner = previous[i], previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                predictor = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                line[i] = (line[i] + predictor) & 0xFF
        pixels.extend(tuple(line[i : i + 3]) for i in range(0, stride, channels))
        previous = line
    return width, height, pixels


def _near(pixel, colour, tolerance=6) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, colour, strict=True))


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed: apt-get install chromium")
def test_the_html_page_renders_in_headless_chromium_with_the_principle_table_and_a_chart(busy, tmp_path):
    page = tmp_path / "report.html"
    page.write_bytes(_get(busy, "html").content)
    png = tmp_path / "report.png"
    subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}",
         f"--screenshot={png}", "--window-size=1200,2000", page.as_uri()],
        check=True, capture_output=True, timeout=180,
    )  # fmt: skip
    data = png.read_bytes()
    assert len(data) > 20_000, "the screenshot is suspiciously small"
    width, height, pixels = _png_pixels(data)
    assert (width, height) == (1200, 2000)
    not_white = sum(1 for p in pixels if p != (255, 255, 255))
    assert not_white > 0.02 * len(pixels), "the page rendered blank"
    # The principle table is drawn: its "met" badges have their own background colour.
    assert sum(1 for p in pixels if _near(p, MET_BACKGROUND)) > 200
    # A chart is drawn: the pale "remained voluntary" columns and legend exist only in the SVG.
    assert sum(1 for p in pixels if _near(p, PALE)) > 500
    # And the table comes before the chart, as the page promises.
    first_badge = next(i for i, p in enumerate(pixels) if _near(p, MET_BACKGROUND)) // width
    first_pale = next(i for i, p in enumerate(pixels) if _near(p, PALE)) // width
    assert first_badge < first_pale


def test_json_csv_and_html_say_that_a_star_also_covers_counts_withheld_to_stop_subtraction(world):
    client = api_client(world.reviewer)
    url = f"/api/v1/pilots/{world.pilot.pk}/compliance-report/?period=2026-Q3"
    said = "withheld so that others cannot be worked out by subtraction"
    assert said in client.get(url).json()["disclosure_control"]
    rows = list(csv.reader(io.StringIO(client.get(url + "&format=csv").content.decode())))
    (row,) = [r for r in rows if r[2] == "disclosure_control"]
    assert said in row[4] and "1-7" in row[4]
    assert said in client.get(url + "&format=html").content.decode()
