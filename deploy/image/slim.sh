#!/bin/sh
# Trims the image's virtual environment to what the commands run (the Dockerfile's build stage
# runs it; see bench/README.md for the sizes before and after):
#
# - pip, setuptools and wheel go: nothing is installed at run time;
# - test suites (numpy's compiled test modules too), C/C++/Cython sources and headers, type stubs,
#   static libraries and pip's install records (RECORD) go;
# - pyarrow keeps what reading CSV and Parquet loads: Flight, Gandiva, its S3/GCS/Azure/HDFS
#   filesystems (our S3 client is our own) and the link-time copies of libarrow_python go;
# - shared libraries lose their symbol tables and debug sections (strip --strip-unneeded), except
#   those auditwheel vendored (see below); identical files (numpy and scipy vendor the same
#   libgfortran) become one file, hard-linked;
# - bytecode is written for what the commands import (warm.py runs them), not for every module:
#   the root filesystem is read-only at run time, so a module without bytecode is compiled in
#   memory each time it is first imported — correct, only slower, and only off the common paths.
# - a dependency's module that the commands import keeps its bytecode only, as a sourceless .pyc in
#   place of its .py (Python's sourceless loader): one copy of each of those modules, not two. Our
#   own package keeps its sources, so that its tracebacks show their lines; a dependency's frames
#   show file and line number without the text. Modules nothing imported keep their source;
# - the Kubernetes client library's asyncio twin (kubernetes/aio, not imported: the operator's own
#   client is aiohttp over the library's credentials) goes.
set -eu
venv=${1:-/opt/modelops}
here=$(dirname "$0")

"$venv/bin/python" -m pip uninstall -y -q setuptools wheel pip
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')

find "$site" -depth -type d \( -name tests -o -name test -o -name __pycache__ \) -exec rm -rf {} +
find "$site" -type f \( -name '*.pyx' -o -name '*.pxd' -o -name '*.pxi' -o -name '*.c' -o -name '*.cc' \
  -o -name '*.cpp' -o -name '*.h' -o -name '*.hpp' -o -name '*.a' -o -name '*.pyi' \) -delete
rm -rf "$site"/numpy/_core/include "$site"/pyarrow/include "$site"/pyarrow/src \
  "$site"/pyarrow/*flight* "$site"/pyarrow/*gandiva* "$site"/pyarrow/_pyarrow_cpp_tests* \
  "$site"/pyarrow/libarrow_s3* "$site"/pyarrow/_s3fs* "$site"/pyarrow/_gcsfs* "$site"/pyarrow/_azurefs* \
  "$site"/pyarrow/_hdfs* "$site"/pyarrow/libarrow_python.so "$site"/pyarrow/libarrow_python*.so.*.* \
  "$site"/numpy/_core/_simd.* "$site"/numpy/_core/_*_tests.* "$site"/*.dist-info/RECORD \
  "$site"/kubernetes/aio

# Not the libraries auditwheel vendored into *.libs: patchelf moved their segments, and strip
# would leave them unloadable ("ELF load command address/offset not page-aligned").
find "$site" -path '*.libs' -prune -o -type f -name '*.so*' -exec strip --strip-unneeded {} +

"$venv/bin/python" - "$site" <<'EOF'
import hashlib, os, sys
seen = {}
for root, _, files in os.walk(sys.argv[1]):
    for name in sorted(files):
        path = os.path.join(root, name)
        if os.path.islink(path) or os.path.getsize(path) < 65536:
            continue
        with open(path, "rb") as handle:
            digest = hashlib.sha256(handle.read()).hexdigest()
        if digest in seen:
            os.unlink(path)
            os.link(seen[digest], path)
        else:
            seen[digest] = path
EOF

# The bytecode of the Python standard library comes with the base image; ours is written here.
PYTHONDONTWRITEBYTECODE= "$venv/bin/python" "$here/warm.py"

# Imported dependencies' modules: their bytecode moves into place of their source (see above).
"$venv/bin/python" - "$site" <<'EOF'
import os, sys
site = sys.argv[1]
tag = sys.implementation.cache_tag
for root, dirs, files in os.walk(site):
    if os.path.relpath(root, site).split(os.sep)[0] == "modelops":
        dirs.clear()
        continue
    if "__pycache__" not in dirs:
        continue
    cache = os.path.join(root, "__pycache__")
    for name in files:
        if not name.endswith(".py"):
            continue
        compiled = os.path.join(cache, f"{name[:-3]}.{tag}.pyc")
        if os.path.exists(compiled):
            os.replace(compiled, os.path.join(root, name[:-3] + ".pyc"))
            os.unlink(os.path.join(root, name))
    dirs[:] = [d for d in dirs if d != "__pycache__"]
    if not os.listdir(cache):
        os.rmdir(cache)
EOF
