"""Backup archives for tests, independent of abdeploy's own writer.

abdeploy-backup(5): a tar archive (plain, gzip or zstd) whose first member
is the manifest abdeploy-backup.json, then the members at their paths,
last SHA256SUMS (sha256sum -c format: the manifest and every regular
member).  The archive of abdeploy 0.1.0 and 0.2.0 is one JSON document
(the same manifest, each member with its data in base64) and a trailing
line "sha256 HEX".

A "doc" here is the 0.2.0 form (a dict, members with "data"): tests
change it, then write it in either format with a correct checksum, so that
only the reader's own checks stand between the archive and the sysroot.
"""

import base64
import hashlib
import io
import json
import subprocess
import tarfile

MANIFEST = "abdeploy-backup.json"
SUMS = "SHA256SUMS"


def read_tar_bytes(data):
    """The members of a tar archive (any compression) as (TarInfo, bytes)."""
    if data[:4] == b"\x28\xb5\x2f\xfd":  # zstd: Python's tarfile lacks it
        data = subprocess.run(["zstd", "-dc"], input=data, stdout=subprocess.PIPE,
                              check=True).stdout
    out = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as t:
        for info in t.getmembers():
            content = t.extractfile(info).read() if info.isreg() else b""
            out.append((info, content))
    return out


def doc_of(data):
    """The 0.2.0-form document of archive bytes DATA (either format)."""
    if data[:1] == b"{":
        return json.loads(data[:data.rindex(b"\nsha256 ")])
    members = read_tar_bytes(data)
    assert members[0][0].name == MANIFEST and members[-1][0].name == SUMS
    doc = json.loads(members[0][1])
    for entry, (info, content) in zip(doc["files"], members[1:-1]):
        assert entry["path"] == info.name
        payload = info.linkname.encode() if info.issym() else content
        entry["data"] = base64.b64encode(payload).decode()
    return doc


def read_doc(path):
    with open(path, "rb") as f:
        return doc_of(f.read())


def seal_json(doc):
    """DOC as a 0.2.0 archive with a correct trailing checksum."""
    body = json.dumps(doc).encode()
    return body + b"\nsha256 " + hashlib.sha256(body).hexdigest().encode() + b"\n"


def sums_line(sha, name):
    if "\\" in name:
        return "\\%s  %s\n" % (sha, name.replace("\\", "\\\\"))
    return "%s  %s\n" % (sha, name)


def tar_info(name, size=0, mode=0o644, kind=tarfile.REGTYPE, linkname=""):
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.type, info.linkname = size, mode, kind, linkname
    info.mtime = 1700000000
    return info


def seal_tar(doc, compression="", extra=(), edit=None):
    """DOC as a tar archive: manifest (DOC without data), members, SHA256SUMS.
    EXTRA: (TarInfo, bytes) added before SHA256SUMS and not in the manifest;
    EDIT(info) may change a member's TarInfo (its data stays)."""
    manifest = {k: v for k, v in doc.items() if k != "files"}
    manifest["files"] = [{k: v for k, v in f.items() if k != "data"} for f in doc["files"]]
    mbytes = json.dumps(manifest, indent=2).encode()
    sums = sums_line(hashlib.sha256(mbytes).hexdigest(), MANIFEST)
    members = [(tar_info(MANIFEST, len(mbytes)), mbytes)]
    for f in doc["files"]:
        data = base64.b64decode(f["data"])
        if f.get("type") == "symlink":
            info = tar_info(f["path"], 0, f["mode"], tarfile.SYMTYPE, data.decode())
            data = b""
        else:
            info = tar_info(f["path"], len(data), f["mode"])
            sums += sums_line(hashlib.sha256(data).hexdigest(), f["path"])
        if edit:
            edit(info)
        members.append((info, data))
    members += list(extra)
    members.append((tar_info(SUMS, len(sums)), sums.encode()))
    return write_tar(members, compression)


def write_tar(members, compression=""):
    buf = io.BytesIO()
    mode = "w:gz" if compression == "gz" else "w"
    with tarfile.open(fileobj=buf, mode=mode, format=tarfile.PAX_FORMAT) as t:
        for info, data in members:
            t.addfile(info, io.BytesIO(data) if info.isreg() else None)
    data = buf.getvalue()
    if compression == "zst":
        data = subprocess.run(["zstd", "-qc"], input=data, stdout=subprocess.PIPE,
                              check=True).stdout
    return data
