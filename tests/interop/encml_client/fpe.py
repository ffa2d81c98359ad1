"""FF1 (NIST SP 800-38G) with AES-256, as `encml.fpe_encrypt`, and card-number tokens, as
`encml.tokenize_pan` (docs/formats.md, "FF1 tokens"; docs/tokenization.md)."""
import math
import uuid

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from .common import FormatError, subkey


def _num(digits, radix):
    x = 0
    for d in digits:
        x = x * radix + d
    return x


def _str(x, radix, m):
    out = [0] * m
    for i in range(m - 1, -1, -1):
        x, out[i] = divmod(x, radix)
    return out


def _ff1(key: bytes, tweak: bytes, radix: int, x, decrypt: bool):
    n = len(x)
    u, v = n // 2, n - n // 2
    a, b = list(x[:u]), list(x[u:])
    bl = math.ceil(math.ceil(v * math.log2(radix)) / 8)
    if radix & (radix - 1) == 0:     # exact for powers of two
        bl = math.ceil(v * (radix.bit_length() - 1) / 8)
    d = 4 * math.ceil(bl / 4) + 4
    t = len(tweak)
    p = bytes([1, 2, 1]) + radix.to_bytes(3, "big") + bytes([10, u % 256]) + n.to_bytes(4, "big") + t.to_bytes(4, "big")
    ecb = Cipher(algorithms.AES(key), modes.ECB()).encryptor()

    def prf(data):
        y = bytes(16)
        for k in range(0, len(data), 16):
            y = ecb.update(bytes(p ^ q for p, q in zip(y, data[k:k + 16])))
        return y

    def round_value(i, half):
        q = tweak + bytes((-t - bl - 1) % 16) + bytes([i]) + _num(half, radix).to_bytes(bl, "big")
        r = prf(p + q)
        s = r
        j = 1
        while len(s) < d:
            s += ecb.update(bytes(c ^ k for c, k in zip(r, j.to_bytes(16, "big"))))
            j += 1
        return int.from_bytes(s[:d], "big")

    rounds = range(9, -1, -1) if decrypt else range(10)
    for i in rounds:
        m = u if i % 2 == 0 else v
        if not decrypt:
            c = (_num(a, radix) + round_value(i, b)) % radix ** m
            a, b = b, _str(c, radix, m)
        else:
            c = (_num(b, radix) - round_value(i, a)) % radix ** m
            b, a = a, _str(c, radix, m)
    return a + b


def ff1_encrypt(key, tweak, radix, numerals):
    return _ff1(key, tweak, radix, numerals, False)


def ff1_decrypt(key, tweak, radix, numerals):
    return _ff1(key, tweak, radix, numerals, True)


def _numerals(value: str, alphabet: str):
    index = {ch: i for i, ch in enumerate(alphabet)}
    if len(index) != len(alphabet) or not 2 <= len(alphabet) <= 65536:
        raise FormatError("an alphabet has 2 to 65,536 distinct characters")
    try:
        x = [index[ch] for ch in value]
    except KeyError:
        raise FormatError("a character outside the alphabet") from None
    if len(alphabet) ** len(x) < 1_000_000:
        raise FormatError("below NIST's minimum domain (radix^length >= 1,000,000)")
    return x


def encrypt(root: bytes, key_id: uuid.UUID, version: int, value: str, alphabet: str = "0123456789",
            tweak: str = None) -> str:
    key = subkey(root, "fpe", key_id, version)
    out = ff1_encrypt(key, (tweak or "").encode("utf-8"), len(alphabet), _numerals(value, alphabet))
    return "".join(alphabet[i] for i in out)


def decrypt(root: bytes, key_id: uuid.UUID, version: int, value: str, alphabet: str = "0123456789",
            tweak: str = None) -> str:
    key = subkey(root, "fpe", key_id, version)
    out = ff1_decrypt(key, (tweak or "").encode("utf-8"), len(alphabet), _numerals(value, alphabet))
    return "".join(alphabet[i] for i in out)


def _luhn_sum(digits) -> int:
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 1:
            d = 2 * d
            d = d - 9 if d > 9 else d
        total += d
    return total


def _pan(root: bytes, key_id: uuid.UUID, text: str, keep_first: int, tokenize: bool) -> str:
    positions = [i for i, ch in enumerate(text) if ch.isdigit()]
    if any(ch not in "0123456789 -" for ch in text) or not 12 <= len(positions) <= 19:
        raise FormatError("a card number has 12 to 19 digits, spaces and dashes")
    if keep_first not in (0, 6):
        raise FormatError("keep_first is 0 or 6")
    d = [int(text[i]) for i in positions]
    n, f = len(d), keep_first
    r = n - 5
    if r - f < 6:
        raise FormatError("fewer than six digits to encrypt")
    if _luhn_sum(d) % 10 != (0 if tokenize else 5):
        raise FormatError("the Luhn sum is not a card number's (0) or a token's (5)")
    tweak = b"encml-pan-v1:" + bytes([n, f]) + bytes(d[:f]) + bytes(d[n - 4:])
    key = subkey(root, "fpe", key_id, 1)
    d[f:r] = (ff1_encrypt if tokenize else ff1_decrypt)(key, tweak, 10, d[f:r])
    want = 5 if tokenize else 0
    d[r] = next(x for x in range(10) if _luhn_sum(d[:r] + [x] + d[r + 1:]) % 10 == want)
    out = list(text)
    for i, digit in zip(positions, d):
        out[i] = str(digit)
    return "".join(out)


def tokenize_pan(root: bytes, key_id: uuid.UUID, pan: str, keep_first: int = 0) -> str:
    return _pan(root, key_id, pan, keep_first, True)


def detokenize_pan(root: bytes, key_id: uuid.UUID, token: str, keep_first: int = 0) -> str:
    return _pan(root, key_id, token, keep_first, False)
