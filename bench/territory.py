"""Reading a national open-data file for a few communes: time and memory next to a bare csv read; prints JSON.

Generates an Agence ORE consumption file (field-name header, ``;``, decimal
comma, masked cells) of ``--rows`` rows (default 1,000,000) spread over
~35,000 communes, then runs, each in its own process so its peak memory is its
own:

* ``csv_baseline``: ``csv.reader`` over the file, counting rows — the least
  any CSV reader can cost;
* ``terril``: :func:`agent.central.territory.parse.parse_file` keeping 36
  communes (what ``terril territory import`` does before it writes a few
  hundred points).

Targets (issue 10): terril ≤ 30 s and ≤ 200 MB peak RSS on 1,000,000 rows.
``ratio`` = terril time / baseline time, measured in the same run.
Usage: ``.venv/bin/python bench/territory.py [--rows N] [--keep]``.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

HEADER = ("operateur;annee;filiere;code_categorie_consommation;libelle_categorie_consommation;code_grand_secteur;"
          "libelle_grand_secteur;code_naf;libelle_secteur_naf2;conso;pdl;indqual;nombre_mailles_secretisees;"
          "code_commune;libelle_commune;code_epci;libelle_epci;code_departement;libelle_departement;code_region;"
          "libelle_region")
SECTORS = ("RESIDENTIEL", "TERTIAIRE", "INDUSTRIE", "AGRICULTURE", "INCONNU")
KEPT = 36


def communes() -> list[str]:
    """~35,000 INSEE-like codes: 95 départements x 370 communes."""
    return [f"{dep:02d}{n:03d}" for dep in range(1, 96) for n in range(1, 371)]


def generate(path: Path, rows: int, seed: int = 10) -> list[str]:
    """Write the file; return the 36 communes the import keeps (spread over the file)."""
    rng = random.Random(seed)
    codes = communes()
    kept = codes[:: len(codes) // KEPT][:KEPT]
    with path.open("w", encoding="utf-8", newline="") as f:
        f.write("\ufeff" + HEADER + "\r\n")
        for i in range(rows):
            code = codes[i * len(codes) // rows]
            sector = SECTORS[i % 5]
            filiere = "Gaz" if i % 7 == 0 else "Electricité"
            conso = "secret" if i % 53 == 0 else f"{rng.uniform(0, 9000):.3f}".replace(".", ",")
            f.write(f"Enedis;{2018 + i % 6};{filiere};PRO;Professionnel;{sector};Secteur;{i % 99:02d};"
                    f"Libellé NAF;{conso};{i % 400};0,9;0;{code};Commune {code};200000000;EPCI;{code[:2]};"
                    f"Département;32;Région\r\n")
    return kept


CSV_BASELINE = """
import csv, json, resource, sys, time
t = time.perf_counter()
n = 0
with open(sys.argv[1], encoding="utf-8-sig", newline="") as f:
    for row in csv.reader(f, delimiter=";"):
        n += 1
print(json.dumps({"seconds": time.perf_counter() - t, "rows": n - 1,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

TERRIL = """
import json, resource, sys, time
from agent.central.territory.parse import parse_file
t = time.perf_counter()
parsed = parse_file(sys.argv[1], sys.argv[2].split(","))
print(json.dumps({"seconds": time.perf_counter() - t, "rows": parsed.rows, "kept_rows": parsed.kept,
                  "figures": len(parsed.figures), "errors": parsed.errors[:3],
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run(code: str, *args: str) -> dict[str, object]:
    out = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True, check=True)
    result: dict[str, object] = json.loads(out.stdout)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--keep", action="store_true", help="keep the generated file and print its folder")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="terril-bench-territory-"))
    try:
        path = work / "conso-elec-gaz-annuelle-par-naf-agregee-commune.csv"
        t = time.perf_counter()
        kept = generate(path, args.rows)
        generated_s = time.perf_counter() - t
        baseline = run(CSV_BASELINE, str(path))
        terril = run(TERRIL, str(path), ",".join(kept))
        seconds = float(terril["seconds"])  # type: ignore[arg-type]
        rss = float(terril["peak_rss_mb"])  # type: ignore[arg-type]
        result = {
            "bench": "territory",
            "rows": args.rows,
            "file_mb": round(path.stat().st_size / 1e6, 1),
            "communes_kept": len(kept),
            "generate_seconds": round(generated_s, 2),
            "csv_baseline": baseline,
            "terril": terril,
            "ratio_to_csv_baseline": round(seconds / float(baseline["seconds"]), 2),  # type: ignore[arg-type]
            "targets": {"seconds": 30, "peak_rss_mb": 200},
            "pass": seconds <= 30 and rss <= 200 and not terril["errors"],
        }
        if args.keep:
            result["work"] = str(work)
        print(json.dumps(result, indent=2))
        return 0
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
