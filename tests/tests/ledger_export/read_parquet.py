# The independent reader: pyarrow (not the writer's Rust crates) lists every object under
# <prefix>/ledger/ in the bucket and reads them as one Hive-partitioned dataset, the way
# Athena, Spark or DuckDB would. Prints one JSON document: the object keys, each file's
# schema version and column types, and every row (decimals and timestamps as strings).
# argv: endpoint access_key secret_key bucket prefix
import json
import sys

import pyarrow.dataset as ds
import pyarrow.fs as fs
import pyarrow.parquet as pq

endpoint, key, secret, bucket, prefix = sys.argv[1:6]
s3 = fs.S3FileSystem(
    endpoint_override=endpoint.split("://", 1)[1],
    scheme="http",
    access_key=key,
    secret_key=secret,
    region="us-east-1",
)
root = f"{bucket}/{prefix}/ledger"
infos = s3.get_file_info(fs.FileSelector(root, recursive=True, allow_not_found=True))
files = sorted(i.path for i in infos if i.type == fs.FileType.File)
versions = sorted({
    pq.ParquetFile(s3.open_input_file(f)).metadata.metadata.get(b"tally.ledger.schema_version", b"").decode()
    for f in files
})
table = ds.dataset(root, filesystem=s3, format="parquet", partitioning="hive").to_table()
print(json.dumps({
    "files": files,
    "versions": versions,
    "types": {field.name: str(field.type) for field in table.schema},
    "rows": table.to_pylist(),
}, default=str))
