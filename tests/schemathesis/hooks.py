"""Schemathesis hooks for pronto: sign Twilio-style webhooks as Twilio signs them, and give positive cases
the few values a JSON Schema cannot describe (a phone number valid for its region, an attempt time between
the lead's arrival and now), so that a schema-valid request is one the server must accept."""

import base64
import hashlib
import hmac
import json
import os
import re
import subprocess
import time
import uuid

import schemathesis

# Numbers libphonenumber knows as valid (the tests' own): any of them satisfies the lead rules.
PHONES = ["+14155550101", "+12125550123", "+4930901820", "+442071838750"]


def twilio_signature(token, url, params):
    """Twilio's X-Twilio-Signature: base64(HMAC-SHA1(token, url + each key and value, keys sorted))."""
    data = url + "".join(k + v for k, v in sorted(params.items()))
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()).decode()


RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}")


@schemathesis.hook
def before_call(context, case, kwargs):
    """Schemathesis revalidates a case after this hook, so an edit that makes a case valid or invalid is
    judged as such."""
    path = case.operation.path
    body = case.body
    headers = case.headers
    # A key names one request: a request with a well-formed key brings a key of its own (a reused key with
    # another body is refused with 422, as it must be).
    key = headers.get("Idempotency-Key") if headers is not None else None
    if isinstance(key, str) and key.strip() and len(key) <= 256:
        headers["Idempotency-Key"] = str(uuid.uuid4())
    if isinstance(body, dict):
        for field in ("phone", "From"):
            value = body.get(field)
            if isinstance(value, str) and value.strip() and path in ("/v1/leads", "/f/{form}", "/v1/inbound/sms", "/v1/inbound/voice"):
                body[field] = PHONES[len(value) % len(PHONES)]
        if path == "/v1/leads/{id}/attempts" and isinstance(body.get("at"), str) and RFC3339.match(body["at"]):
            body.pop("at")
        if path == "/v1/inbound/email" and isinstance(body.get("from"), str) and body["from"].strip():
            body["from"] = "Lee <lee@client.example>"
    # A suppression's address must parse for its medium, which a JSON Schema cannot say: a positive case gets
    # one that does.
    if path == "/v1/suppressions" and case.method.upper() == "POST" and isinstance(body, dict):
        if isinstance(body.get("address"), str) and body["address"]:
            n = len(body["address"])
            body["address"] = PHONES[n % len(PHONES)] if body.get("medium") == "sms" else f"s{n}@example.com"
    if path == "/v1/suppressions/import" and isinstance(body, str):
        csv = f"address,reason\ns{len(body)}@example.com,manual\n"
        case.body = csv
        if "data" in kwargs:
            kwargs["data"] = csv
    if path == "/v1/contacts" and isinstance(case.query, dict):
        value = case.query.get("phone")
        if isinstance(value, str) and value.strip():
            case.query["phone"] = PHONES[0]
    # The signature placeholder configured in schemathesis.toml is replaced by Twilio's real signature; any
    # other value (Schemathesis trying a wrong credential) is sent as it is.
    if path in ("/v1/inbound/sms", "/v1/inbound/voice") and isinstance(body, dict) and headers is not None:
        if headers.get("X-Twilio-Signature") == "sign-me":
            params = {str(k): str(v) for k, v in body.items()}
            url = os.environ["PRONTO_PUBLIC_URL"].rstrip("/") + path
            headers["X-Twilio-Signature"] = twilio_signature(os.environ["PRONTO_SMS_AUTH_TOKEN"], url, params)
    # Shop webhooks: the placeholder is replaced by the HMAC-SHA256 of the exact bytes sent, under the secret of
    # the shop scripts/schemathesis.sh configures, and the request names that shop.
    shops = {
        "/v1/webhooks/shopify": ("X-Shopify-Hmac-Sha256", "X-Shopify-Shop-Domain", "schemathesis.myshopify.com",
                                 "PRONTO_SHOPIFY_SECRET"),
        "/v1/webhooks/woocommerce": ("X-WC-Webhook-Signature", "X-WC-Webhook-Source", "https://schemathesis.example/",
                                     "PRONTO_WOO_SECRET"),
    }
    if path in shops and headers is not None:
        sig_header, shop_header, shop, secret_var = shops[path]
        if headers.get(sig_header) == "sign-me":
            # No body at all is Schemathesis's NotSet; None is the JSON body `null`.
            unset = type(body).__name__ == "NotSet"
            raw = b"" if unset else json.dumps(body, allow_nan=False).encode()
            kwargs.pop("json", None)
            kwargs["data"] = raw
            headers["Content-Type"] = "application/json"
            headers[shop_header] = shop
            headers[sig_header] = base64.b64encode(
                hmac.new(os.environ[secret_var].encode(), raw, hashlib.sha256).digest()).decode()
            if isinstance(kwargs.get("headers"), dict):
                kwargs["headers"].update(headers)
    # SendGrid's event webhook: the placeholder is replaced by an ECDSA P-256 signature (openssl, with the key
    # scripts/schemathesis.sh made and configured) of the timestamp followed by the exact bytes sent.
    sendgrid = ("X-Twilio-Email-Event-Webhook-Signature", "X-Twilio-Email-Event-Webhook-Timestamp")
    if path == "/v1/inbound/events/sendgrid" and headers is not None and headers.get(sendgrid[0]) == "sign-me":
        unset = type(body).__name__ == "NotSet"
        raw = b"" if unset else json.dumps(body, allow_nan=False).encode()
        kwargs.pop("json", None)
        kwargs["data"] = raw
        headers["Content-Type"] = "application/json"
        timestamp = headers.get(sendgrid[1])
        if not isinstance(timestamp, str):
            timestamp = str(int(time.time()))
            headers[sendgrid[1]] = timestamp
        signature = subprocess.run(["openssl", "dgst", "-sha256", "-sign", os.environ["SENDGRID_TEST_KEY"]],
                                   input=timestamp.encode() + raw, capture_output=True, check=True).stdout
        headers[sendgrid[0]] = base64.b64encode(signature).decode()
        if isinstance(kwargs.get("headers"), dict):
            kwargs["headers"].update(headers)
    # Mailgun signs inside the body: a body whose signature object has a timestamp and a token gets them as
    # Mailgun would send them (now, and a token never used before: pronto refuses stale timestamps and
    # replayed tokens) and the HMAC of the two under the configured signing key.
    if path == "/v1/inbound/events/mailgun" and isinstance(body, dict) and isinstance(body.get("signature"), dict):
        sig = body["signature"]
        if isinstance(sig.get("timestamp"), str) and isinstance(sig.get("token"), str):
            sig["timestamp"] = str(int(time.time()))
            sig["token"] = uuid.uuid4().hex
            sig["signature"] = hmac.new(os.environ["PRONTO_MAILGUN_SIGNING_KEY"].encode(),
                                        (sig["timestamp"] + sig["token"]).encode(), hashlib.sha256).hexdigest()
