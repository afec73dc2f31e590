#!/usr/bin/env python3
"""HTTPS client helpers for the console and API tests: requests from a chosen source address, TOTP codes
(RFC 6238) and console logins. Standard library only."""

import base64
import hashlib
import hmac
import http.client
import json
import re
import socket
import ssl
import struct
import time
import urllib.parse


def totp(secret, at=None, step=30, digits=6):
    key = base64.b32decode(secret.upper() + "=" * (-len(secret) % 8))
    counter = int((time.time() if at is None else at) // step)
    mac = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    off = mac[-1] & 0x0F
    code = (struct.unpack(">I", mac[off:off + 4])[0] & 0x7FFFFFFF) % 10**digits
    return str(code).zfill(digits)


class Client:
    """One HTTPS client bound to a source address; keeps cookies like a browser (by name)."""

    def __init__(self, host, port, source="127.0.0.1", token=None):
        self.host, self.port, self.source, self.token = host, port, source, token
        self.cookies = {}
        self.ctx = ssl.create_default_context()
        self.ctx.check_hostname = False
        self.ctx.verify_mode = ssl.CERT_NONE

    def request(self, method, path, body=None, headers=None, form=None, token="default"):
        h = dict(headers or {})
        tok = self.token if token == "default" else token
        if tok:
            h["Authorization"] = "Bearer " + tok
        if form is not None:
            body = urllib.parse.urlencode(form).encode()
            h["Content-Type"] = "application/x-www-form-urlencoded"
        elif body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        elif isinstance(body, str):
            body = body.encode()
        if self.cookies:
            h["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        conn = http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=10,
                                           source_address=(self.source, 0))
        try:
            conn.request(method, path, body=body, headers=h)
            res = conn.getresponse()
            data = res.read()
        finally:
            conn.close()
        for v in res.headers.get_all("Set-Cookie") or []:
            name, _, rest = v.partition("=")
            value = rest.split(";", 1)[0]
            if "Max-Age=0" in v:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
        return res, data

    def json(self, method, path, body=None, token="default"):
        res, data = self.request(method, path, body=body, token=token)
        try:
            parsed = json.loads(data) if data else None
        except ValueError:
            parsed = None
        return res.status, parsed, res, data

    def login(self, name, password, code=""):
        res, data = self.request("GET", "/login", token=None)
        m = re.search(rb'name="csrf" value="([^"]+)"', data)
        assert m, data[:500]
        return self.request("POST", "/login", token=None,
                            form={"csrf": m.group(1).decode(), "name": name, "password": password,
                                  "code": code})

    def csrf(self, path="/settings"):
        res, data = self.request("GET", path, token=None)
        m = re.search(rb'name="csrf" value="([^"]+)"', data)
        return m.group(1).decode() if m else None


def refused(host, port, source):
    """True when the server closes the connection before completing TLS (a source it will not serve)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((host, port), timeout=5, source_address=(source, 0)) as raw:
            with ctx.wrap_socket(raw, server_hostname="palisade"):
                return False
    except (ssl.SSLError, ConnectionError, OSError):
        return True


def sip_ping(sip_port, source, host="127.0.0.1"):
    """An OPTIONS from `source` over UDP; True if anything answers within 2 s."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((source, 0))
    s.settimeout(2)
    lport = s.getsockname()[1]
    msg = (f"OPTIONS sip:ping@{host}:{sip_port} SIP/2.0\r\n"
           f"Via: SIP/2.0/UDP {source}:{lport};branch=z9hG4bK{int(time.time() * 1000)};rport\r\n"
           f"Max-Forwards: 70\r\nFrom: <sip:probe@{source}>;tag=1\r\nTo: <sip:ping@{host}>\r\n"
           f"Call-ID: {time.time()}@{source}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
    s.sendto(msg.encode(), (host, sip_port))
    try:
        return s.recv(4096).startswith(b"SIP/2.0 ")
    except OSError:
        return False
    finally:
        s.close()
