#!/usr/bin/python3
"""A tiny token service for docker-registry's `auth: token` (the Docker Hub
flow), for the integration tests. Loopback only.

    tokenserver.py --cert-out CERT.pem --port-file PORTFILE
                   [--port 0] [--service S] [--issuer I]
                   [--user U --password P] [--anonymous-pull]
                   [--expires SECONDS]

At start it makes an EC P-256 key and a self-signed certificate, writes the
certificate (PEM) to --cert-out for the registry's `rootcertbundle`, binds
127.0.0.1:--port (0 = any free port) and then writes the port to
--port-file, so a caller that sees the port file can start the registry.

GET /token?service=S&scope=repository:NAME:pull[,push][&scope=...]
    HTTP Basic credentials must equal --user/--password, else 401.
    Without credentials: pull is granted when --anonymous-pull is given,
    otherwise a token with no access at all (as Docker Hub does for a
    private repository), so the registry answers 401 to its use.
POST /token (OAuth2 form: grant_type=password with username/password, or
    grant_type=refresh_token with refresh_token) is accepted too, for
    clients like containerd that try it first.

The answer is {"token", "access_token", "expires_in", "issued_at"}, a JWT
signed ES256 with the certificate in the `x5c` header, claims iss, sub,
aud (= service), exp, nbf, iat, jti and access.

Each request is logged on stderr as one line
    token-request method=GET user=U service=S scope=... status=200
so tests can count how many tokens a client fetched.

Needs python3-jwt and python3-cryptography: run with /usr/bin/python3.
"""

import argparse
import base64
import datetime
import http.server
import json
import os
import sys
import threading
import urllib.parse
import uuid

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

LOG_LOCK = threading.Lock()


def log(msg):
    with LOG_LOCK:
        sys.stderr.write(msg + "\n")
        sys.stderr.flush()


def make_key_and_cert(issuer):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None),
                           critical=True)
            .sign(key, hashes.SHA256()))
    return key, cert


def write_atomic(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.rename(tmp, path)


class TokenHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "regmirror-test-tokenserver/1"

    def log_message(self, fmt, *args):
        pass  # one line per request is written by token_reply

    def credentials(self):
        """(user, password) from Basic auth, or None; raises ValueError
        on a malformed header."""
        h = self.headers.get("Authorization")
        if not h:
            return None
        scheme, _, rest = h.partition(" ")
        if scheme.lower() != "basic":
            raise ValueError("not basic")
        user, sep, pw = base64.b64decode(rest.strip()).decode().partition(":")
        if not sep:
            raise ValueError("no colon")
        return user, pw

    def grant(self, scopes, user):
        """The access list for the scopes a (possibly anonymous) user may
        have."""
        cfg = self.server.cfg
        access = []
        for scope in scopes:
            parts = scope.split(":")
            if len(parts) < 3:
                continue
            typ, name, actions = parts[0], ":".join(parts[1:-1]), parts[-1]
            wanted = [a for a in actions.split(",") if a]
            if user is not None:
                allowed = [a for a in wanted if a in ("pull", "push", "*")]
            elif cfg.anonymous_pull:
                allowed = [a for a in wanted if a == "pull"]
            else:
                allowed = []
            if allowed:
                access.append({"type": typ, "name": name,
                               "actions": allowed})
        return access

    def send_json(self, status, obj, extra=None):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def token_reply(self, service, scopes, user, authfail):
        cfg = self.server.cfg
        logline = "token-request method=%s user=%s service=%s scope=%s" % (
            self.command, user if user is not None else "-", service,
            "+".join(scopes) if scopes else "-")
        if authfail:
            log(logline + " status=401")
            self.send_json(401, {"details": "incorrect username or password"},
                           {"WWW-Authenticate":
                            'Basic realm="regmirror-test-tokenserver"'})
            return
        now = datetime.datetime.now(datetime.timezone.utc)
        iat = int(now.timestamp())
        claims = {
            "iss": cfg.issuer,
            "sub": user if user is not None else "",
            "aud": service or cfg.service,
            "exp": iat + cfg.expires,
            "nbf": iat - 10,
            "iat": iat,
            "jti": uuid.uuid4().hex,
            "access": self.grant(scopes, user),
        }
        token = jwt.encode(claims, self.server.key, algorithm="ES256",
                           headers={"x5c": [self.server.cert_b64]})
        log(logline + " status=200")
        self.send_json(200, {
            "token": token,
            "access_token": token,
            "expires_in": cfg.expires,
            "issued_at": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        })

    def check_user(self, user, pw):
        cfg = self.server.cfg
        return cfg.user is not None and user == cfg.user and \
            pw == cfg.password

    def do_GET(self):
        u = urllib.parse.urlsplit(self.path)
        if u.path != "/token":
            log("token-request method=%s path=%s status=404" %
                (self.command, u.path))
            self.send_json(404, {"details": "not found"})
            return
        q = urllib.parse.parse_qs(u.query)
        service = q.get("service", [""])[0]
        scopes = q.get("scope", [])
        try:
            cred = self.credentials()
        except Exception:
            self.token_reply(service, scopes, "?", True)
            return
        if cred is None:
            self.token_reply(service, scopes, None, False)
            return
        ok = self.check_user(*cred)
        self.token_reply(service, scopes, cred[0], not ok)

    def do_POST(self):
        u = urllib.parse.urlsplit(self.path)
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n).decode() if n > 0 else ""
        if u.path != "/token":
            log("token-request method=POST path=%s status=404" % u.path)
            self.send_json(404, {"details": "not found"})
            return
        f = urllib.parse.parse_qs(body)
        service = f.get("service", [""])[0]
        scopes = " ".join(f.get("scope", [])).split()
        grant = f.get("grant_type", [""])[0]
        if grant == "password":
            user = f.get("username", [""])[0]
            ok = self.check_user(user, f.get("password", [""])[0])
            self.token_reply(service, scopes, user, not ok)
        elif grant == "refresh_token":
            # The refresh token we hand out is "refresh:<user>".
            rt = f.get("refresh_token", [""])[0]
            user = rt[len("refresh:"):] if rt.startswith("refresh:") else ""
            ok = self.server.cfg.user is not None and \
                user == self.server.cfg.user
            self.token_reply(service, scopes, user, not ok)
        else:
            log("token-request method=POST grant=%s status=400" % grant)
            self.send_json(400, {"error": "unsupported_grant_type"})

    do_HEAD = do_GET


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--cert-out", required=True)
    ap.add_argument("--service", default="regmirror-test-registry")
    ap.add_argument("--issuer", default="regmirror-test-tokenserver")
    ap.add_argument("--user")
    ap.add_argument("--password")
    ap.add_argument("--anonymous-pull", action="store_true")
    ap.add_argument("--expires", type=int, default=300)
    cfg = ap.parse_args()

    key, cert = make_key_and_cert(cfg.issuer)
    write_atomic(cfg.cert_out, cert.public_bytes(serialization.Encoding.PEM))

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", cfg.port),
                                          TokenHandler)
    srv.daemon_threads = True
    srv.cfg = cfg
    srv.key = key
    srv.cert_b64 = base64.b64encode(
        cert.public_bytes(serialization.Encoding.DER)).decode()
    write_atomic(cfg.port_file, b"%d\n" % srv.server_address[1])
    log("tokenserver listening on 127.0.0.1:%d service=%s issuer=%s" %
        (srv.server_address[1], cfg.service, cfg.issuer))
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
