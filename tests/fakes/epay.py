"""A fake EPay (易支付) merchant gateway for tests: it checks the submitted form's signature and
builds the notify callback the way the real gateway does (MD5 of the sorted non-empty
parameters, without sign/sign_type, joined as k=v&..., with the merchant key appended)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass


def epay_sign(params: dict[str, str], key: str) -> str:
    pairs = [f"{k}={params[k]}" for k in sorted(params) if k not in ("sign", "sign_type")]
    pairs = [p for p in pairs if not p.endswith("=")]
    return hashlib.md5(("&".join(pairs) + key).encode("utf-8")).hexdigest()


@dataclass
class FakeEpay:
    pid: str
    key: str

    def accepts(self, form: dict[str, str]) -> bool:
        """What the gateway checks on submit.php: merchant id and signature."""
        return form.get("pid") == self.pid and form.get("sign") == epay_sign(form, self.key)

    def notify(self, form: dict[str, str], *, status: str = "TRADE_SUCCESS") -> dict[str, str]:
        """The signed query parameters of the notify callback for a paid order."""
        assert self.accepts(form), "the order form is not signed with this merchant's key"
        params = {
            "pid": self.pid,
            "trade_no": f"2026{secrets.randbelow(10**12):012d}",
            "out_trade_no": form["out_trade_no"],
            "type": form["type"],
            "name": form["name"],
            "money": form["money"],
            "trade_status": status,
        }
        params["sign"] = epay_sign(params, self.key)
        params["sign_type"] = "MD5"
        return params
