#!/usr/bin/env python3
"""Provisioning helpers for the e2e tests (standard library only).

    prov_client.py parse MODEL FILE
        Parses a served file the way the phone would read it (XML must be well-formed; Yealink and the generic
        file must be `key = value` lines) and prints the settings that matter as JSON:
        {"password", "auth_id", "tls", "srtp", "ca", "admin_password", "voicemail", "mwi", "dtmf"}; null for a
        setting the format has no key for (Grandstream's CA, Linphone's CA and MWI subscription).
    prov_client.py scan HOST PORT SOURCE COUNT
        Fetches COUNT random /prov/<token>/<mac>.cfg URLs over one keep-alive TLS connection from SOURCE (a
        127.0.0.x address), reconnecting only when the server closes. Stops at the first answer that is not a
        404. Prints {"not_found": N, "bodies": DISTINCT_404_BODIES, "then": STATUS_OR_ERROR,
        "reconnect": "refused"|STATUS, "seconds": S}.
"""

import base64
import http.client
import json
import os
import socket
import ssl
import sys
import time
import xml.etree.ElementTree as ET


def kv(text):
    out = {}
    for n, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        if "=" not in s:
            raise SystemExit(f"line {n} is not key = value: {line!r}")
        k, v = s.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def parse(model, path):
    text = open(path, encoding="utf-8").read()
    r = {"password": None, "auth_id": None, "tls": False, "srtp": False, "ca": False, "admin_password": None,
         "voicemail": None, "mwi": False, "dtmf": False}
    if model == "yealink":
        c = kv(text)
        r.update(password=c.get("account.1.password"), auth_id=c.get("account.1.auth_name"),
                 tls=c.get("account.1.sip_server.1.transport_type") == "2",
                 srtp=c.get("account.1.srtp_encryption") == "2",
                 ca=c.get("trusted_certificates.url", "").endswith("/ca.pem"),
                 admin_password=(c.get("static.security.user_password") or ":").split(":", 1)[1] or None,
                 voicemail=c.get("voice_mail.number.1"), mwi=c.get("account.1.subscribe_mwi") == "1",
                 dtmf=c.get("account.1.dtmf.type") == "1")
    elif model == "generic":
        c = kv(text)
        r.update(password=c.get("sip.password"), auth_id=c.get("sip.auth_id"), tls=c.get("sip.transport") == "tls",
                 srtp=c.get("media.srtp") == "mandatory", ca=c.get("tls.ca_url", "").endswith("/ca.pem"),
                 admin_password=c.get("phone.admin_password"), voicemail=c.get("voicemail.number"),
                 mwi=c.get("mwi.subscribe") == "yes", dtmf=c.get("dtmf.mode") == "rfc4733")
    else:
        root = ET.fromstring(text)
        if model == "snom":
            ps = root.find("phone-settings")
            g = lambda k: (ps.find(k).text if ps is not None and ps.find(k) is not None else None)
            certs = root.findall("certificates/certificate")
            r.update(password=g("user_pass"), auth_id=g("user_pname"),
                     tls=(g("user_outbound") or "").endswith("transport=tls"), srtp=g("user_savp") == "mandatory",
                     ca=any("BEGIN CERTIFICATE" in (c.text or "") for c in certs),
                     admin_password=g("admin_mode_password"), voicemail=g("user_mailbox"),
                     mwi=g("user_mailbox") is not None, dtmf=g("user_dtmf_info") == "off")
        elif model == "grandstream":
            cfg = root.find("config")
            g = lambda k: (cfg.find(k).text if cfg.find(k) is not None else None)
            r.update(password=g("P34"), auth_id=g("P36"), tls=g("P130") == "2", srtp=g("P183") == "2",
                     ca=None, admin_password=g("P2"), voicemail=g("P33"), mwi=g("P99") == "1", dtmf=g("P851") == "1")
        elif model == "polycom":
            el = root[0]
            g = el.attrib.get
            r.update(password=g("reg.1.auth.password"), auth_id=g("reg.1.auth.userId"),
                     tls=g("reg.1.server.1.transport") == "TLS", srtp=g("sec.srtp.require") == "1",
                     ca="BEGIN CERTIFICATE" in (g("device.sec.TLS.customCaCert1") or ""),
                     admin_password=g("device.auth.localAdminPassword"), voicemail=g("msg.mwi.1.callBack"),
                     mwi=bool(g("msg.mwi.1.subscribe")), dtmf=g("tone.dtmf.rfc2833Control") == "1")
        elif model == "linphone":
            ns = "{http://www.linphone.org/xsds/lpconfig.xsd}"
            e = {}
            for sec in root.findall(ns + "section"):
                for ent in sec.findall(ns + "entry"):
                    e[sec.get("name") + "." + ent.get("name")] = ent.text
            r.update(password=e.get("auth_info_0.passwd"), auth_id=e.get("auth_info_0.userid"),
                     tls="transport=tls" in (e.get("proxy_0.reg_proxy") or ""),
                     srtp=e.get("sip.media_encryption") == "srtp" and e.get("sip.media_encryption_mandatory") == "1",
                     ca=None, admin_password="-",
                     voicemail=e.get("palisade.voicemail_number"), mwi=None,
                     dtmf=e.get("sip.use_rfc2833") == "1" and e.get("sip.use_info") == "0")
        else:
            raise SystemExit(f"unknown model {model}")
    print(json.dumps(r))


def connect(host, port, source):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    c = http.client.HTTPSConnection(host, port, context=ctx, timeout=5, source_address=(source, 0))
    c.connect()
    return c


def scan(host, port, source, count):
    t0 = time.time()
    not_found, bodies, then = 0, set(), None
    conn = connect(host, port, source)
    for _ in range(count):
        token = base64.b32encode(os.urandom(20)).decode().lower().rstrip("=")
        mac = os.urandom(6).hex()
        try:
            conn.request("GET", f"/prov/{token}/{mac}.cfg", headers={"User-Agent": "Yealink SIP-T46S 66.86.0.15"})
            res = conn.getresponse()
            body = res.read()
        except (OSError, http.client.HTTPException) as e:
            then = f"closed: {type(e).__name__}"
            break
        if res.status != 404:
            then = res.status
            break
        not_found += 1
        bodies.add(body)
        if res.getheader("Connection", "").lower() == "close":
            conn.close()
            conn = connect(host, port, source)
    conn.close()
    try:
        c = connect(host, port, source)
        c.request("GET", "/prov/x/y")
        reconnect = c.getresponse().status
    except (OSError, http.client.HTTPException):
        reconnect = "refused"
    print(json.dumps({"not_found": not_found, "bodies": len(bodies), "then": then, "reconnect": reconnect,
                      "seconds": round(time.time() - t0, 2)}))


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "parse":
        parse(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 6 and sys.argv[1] == "scan":
        scan(sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5]))
    else:
        raise SystemExit(__doc__)
