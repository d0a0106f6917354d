# An independent reader of a FOCUS export (Python's csv module and pyarrow, not the writer's
# crate). argv: csv FILE | parquet FILE. Prints JSON on stdout.
#   csv:     {"header": [...], "rows": [{column: string}]}  (every value as written; "" = null)
#   parquet: {"version", "columns", "types", "rows", "billedE15", "listE15", "tokens",
#             "productMismatches"}: sums as exact integers (10^-15 USD, tokens), and the rows where
#             PricingQuantity x ListUnitPrice != ListCost.
import csv
import decimal
import json
import sys

decimal.getcontext().prec = 80
kind, path = sys.argv[1], sys.argv[2]
if kind == "csv":
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        print(json.dumps({"header": reader.fieldnames, "rows": list(reader)}))
    sys.exit(0)

import pyarrow.parquet as pq

table = pq.read_table(path)
meta = pq.read_metadata(path).metadata or {}
rows = table.to_pylist()
E15 = decimal.Decimal(10) ** 15
zero = decimal.Decimal(0)
billed = sum((r["BilledCost"] for r in rows), zero)
listed = sum((r["ListCost"] for r in rows), zero)
tokens = sum((r["ConsumedQuantity"] for r in rows if r["ConsumedUnit"] == "Tokens"), zero)
bad = [i for i, r in enumerate(rows) if r["PricingQuantity"] * r["ListUnitPrice"] != r["ListCost"]]
print(json.dumps({
    "version": meta.get(b"focus.version", b"").decode(),
    "columns": table.column_names,
    "types": {f.name: str(f.type) for f in table.schema},
    "rows": len(rows),
    "billedE15": str(int(billed * E15)),
    "listE15": str(int(listed * E15)),
    "tokens": str(int(tokens)),
    "productMismatches": bad,
}))
