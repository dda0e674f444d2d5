# The state of many paths and commands on a host in one round trip (roles run it with python3 -c).
# Argument: JSON {"paths": [...], "commands": {"name": ["argv", ...]}}. Prints JSON:
#   paths:    path -> "absent" | "file SHA1 OWNER:GROUP:MODE" | "directory OWNER:GROUP:MODE" | "link TARGET"
#             (SHA-1, as the copy and template modules compare contents; MODE as four octal digits)
#   commands: name -> {"rc": N, "stdout": "..."} (standard output only; rc 127 when the program is missing)
# Read only: it changes nothing, so it runs in check mode too.
import grp
import hashlib
import json
import os
import pwd
import stat
import subprocess
import sys


def name(lookup, ident):
    try:
        return lookup(ident)[0]
    except KeyError:
        return str(ident)


def describe(path):
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return "absent"
    except NotADirectoryError:
        return "absent"
    if stat.S_ISLNK(st.st_mode):
        return "link " + os.readlink(path)
    attrs = f"{name(pwd.getpwuid, st.st_uid)}:{name(grp.getgrgid, st.st_gid)}:{stat.S_IMODE(st.st_mode):04o}"
    if stat.S_ISDIR(st.st_mode):
        return "directory " + attrs
    if not stat.S_ISREG(st.st_mode):
        return "other " + attrs
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return f"file {digest.hexdigest()} {attrs}"


def run(argv):
    try:
        done = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=False)
    except OSError:
        return {"rc": 127, "stdout": ""}
    return {"rc": done.returncode, "stdout": done.stdout.decode("utf-8", "replace")}


request = json.loads(sys.argv[1])
print(
    json.dumps(
        {
            "paths": {path: describe(path) for path in request.get("paths", [])},
            "commands": {key: run(argv) for key, argv in request.get("commands", {}).items()},
        }
    )
)
