#!/usr/bin/python3
"""Generate OCI image layouts for the integration tests.

Everything is deterministic from --seed: the same arguments always produce
the same bytes, so the same digests.

    mkimage.py OUT single [--layers 1024,2048] [--seed S] [--ref R]
        one linux/amd64 image; each layer is a real gzip'd tar holding one
        file of N random bytes (plus a small text file), so dockerd can
        extract it; the config has rootfs.diff_ids matching the
        uncompressed tars, architecture and os.
    mkimage.py OUT multi [--layers ...] [--seed S] [--ref R]
        an OCI image index with linux/amd64 and linux/arm64 images built
        as for `single` (distinct layers per platform).
    mkimage.py OUT raw --size BYTES [--seed S] [--ref R]
        one image whose only layer is exactly BYTES incompressible bytes
        (random bytes behind a gzip magic number, so skopeo copies it as
        is instead of compressing it; it is not a valid gzip stream and
        no runtime can extract it: it exists to be fetched as a blob).

OUT becomes an OCI image layout (oci-layout, index.json, blobs/sha256/..).
index.json names the top-level manifest (or index) with the annotation
org.opencontainers.image.ref.name = R (default "latest"), so skopeo can
read it as oci:OUT:R.

A JSON summary is printed on stdout:
    {"ref", "top": {"digest", "mediaType", "size"},
     "images": [{"platform", "manifest", "config", "layers": [...],
                 "diff_ids": [...]}],
     "blobs": [every digest in the layout]}
where manifest, config and each layer are {"digest","mediaType","size"}.

Only the Python standard library is used; run it with /usr/bin/python3.
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import random
import sys
import tarfile

MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"

CREATED = "2024-01-01T00:00:00Z"
MTIME = 1704067200  # CREATED as a Unix time


class Layout:
    """An OCI image layout being written under a directory."""

    def __init__(self, path):
        self.path = path
        self.blobdir = os.path.join(path, "blobs", "sha256")
        os.makedirs(self.blobdir, exist_ok=True)
        self.blobs = []

    def put(self, data, media_type):
        hexd = hashlib.sha256(data).hexdigest()
        p = os.path.join(self.blobdir, hexd)
        if not os.path.exists(p):
            with open(p + ".tmp", "wb") as f:
                f.write(data)
            os.rename(p + ".tmp", p)
        digest = "sha256:" + hexd
        if digest not in self.blobs:
            self.blobs.append(digest)
        return {"mediaType": media_type, "digest": digest, "size": len(data)}

    def put_json(self, obj, media_type):
        # Compact, key order as built: the exact bytes are what get digested.
        return self.put(json.dumps(obj, separators=(",", ":")).encode(),
                        media_type)

    def finish(self, top, ref):
        with open(os.path.join(self.path, "oci-layout"), "w") as f:
            json.dump({"imageLayoutVersion": "1.0.0"}, f)
        desc = dict(top)
        desc["annotations"] = {"org.opencontainers.image.ref.name": ref}
        with open(os.path.join(self.path, "index.json"), "w") as f:
            json.dump({"schemaVersion": 2, "mediaType": MT_INDEX,
                       "manifests": [desc]}, f)


def tar_layer(rng, index, size):
    """A gzip'd tar with layerN/data.bin (size random bytes) and a text
    file; returns (compressed bytes, diff_id)."""
    files = [
        ("layer%d/data.bin" % index, rng.randbytes(size)),
        ("layer%d/hello.txt" % index,
         ("hello from layer %d\n" % index).encode()),
    ]
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as t:
        d = tarfile.TarInfo("layer%d" % index)
        d.type = tarfile.DIRTYPE
        d.mode = 0o755
        d.mtime = MTIME
        t.addfile(d)
        for name, data in files:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.mode = 0o644
            ti.mtime = MTIME
            ti.uname = ti.gname = "root"
            t.addfile(ti, io.BytesIO(data))
    tar = raw.getvalue()
    gz = io.BytesIO()
    with gzip.GzipFile(fileobj=gz, mode="wb", compresslevel=1,
                       mtime=0, filename="") as g:
        g.write(tar)
    return gz.getvalue(), "sha256:" + hashlib.sha256(tar).hexdigest()


def raw_layer(rng, size):
    """Exactly size incompressible bytes starting with a gzip magic."""
    magic = b"\x1f\x8b\x08\x00"
    if size < len(magic):
        raise SystemExit("mkimage: --size must be at least %d" % len(magic))
    data = magic + rng.randbytes(size - len(magic))
    return data, "sha256:" + hashlib.sha256(data).hexdigest()


def build_image(lay, rng, arch, layers_spec, raw_size=None, variant=None):
    layers, diff_ids = [], []
    if raw_size is not None:
        data, diff = raw_layer(rng, raw_size)
        layers.append(lay.put(data, MT_LAYER))
        diff_ids.append(diff)
    else:
        for i, size in enumerate(layers_spec):
            data, diff = tar_layer(rng, i, size)
            layers.append(lay.put(data, MT_LAYER))
            diff_ids.append(diff)
    config = {
        "created": CREATED,
        "architecture": arch,
        "os": "linux",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:"
                    "/usr/bin:/sbin:/bin"],
            "Cmd": ["/bin/sh"],
            "Labels": {"regmirror.test.seed": str(rng.random())},
        },
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": CREATED,
                     "created_by": "mkimage.py layer %d" % i}
                    for i in range(len(layers))],
    }
    if variant:
        config["variant"] = variant
    cdesc = lay.put_json(config, MT_CONFIG)
    manifest = {
        "schemaVersion": 2,
        "mediaType": MT_MANIFEST,
        "config": cdesc,
        "layers": layers,
    }
    mdesc = lay.put_json(manifest, MT_MANIFEST)
    platform = {"architecture": arch, "os": "linux"}
    if variant:
        platform["variant"] = variant
    return {"platform": platform, "manifest": mdesc, "config": cdesc,
            "layers": layers, "diff_ids": diff_ids}


def parse_sizes(s):
    try:
        sizes = [int(x) for x in s.split(",") if x.strip()]
    except ValueError:
        raise SystemExit("mkimage: bad --layers %r" % s)
    if not sizes or min(sizes) < 0:
        raise SystemExit("mkimage: bad --layers %r" % s)
    return sizes


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("kind", choices=["single", "multi", "raw"])
    ap.add_argument("--seed", default="regmirror")
    ap.add_argument("--ref", default="latest")
    ap.add_argument("--layers", default="4096,65536,262144",
                    help="comma-separated sizes of each layer's random file")
    ap.add_argument("--size", type=int, help="raw: exact layer size")
    a = ap.parse_args()

    lay = Layout(a.out)
    if a.kind == "raw":
        if a.size is None:
            raise SystemExit("mkimage: raw needs --size")
        rng = random.Random("%s/raw" % a.seed)
        images = [build_image(lay, rng, "amd64", None, raw_size=a.size)]
        top = images[0]["manifest"]
    elif a.kind == "single":
        rng = random.Random("%s/amd64" % a.seed)
        images = [build_image(lay, rng, "amd64", parse_sizes(a.layers))]
        top = images[0]["manifest"]
    else:
        sizes = parse_sizes(a.layers)
        images = []
        for arch, variant in (("amd64", None), ("arm64", "v8")):
            rng = random.Random("%s/%s" % (a.seed, arch))
            images.append(build_image(lay, rng, arch, sizes,
                                      variant=variant))
        index = {
            "schemaVersion": 2,
            "mediaType": MT_INDEX,
            "manifests": [dict(im["manifest"], platform=im["platform"])
                          for im in images],
        }
        top = lay.put_json(index, MT_INDEX)
    lay.finish(top, a.ref)
    json.dump({"ref": a.ref, "top": top, "images": images,
               "blobs": lay.blobs}, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
