"""What the checkpoint page says, in Chinese (first), English and Portuguese (Macau): its labels,
the word for each colour, and every reason code in plain words for the officer.

Reasons are given in Chinese and English; a Portuguese page shows the English sentence for a
reason (the colour words, labels and decision words are Portuguese).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from gateway.model import Reason
from gateway.recognise import DecisionReason

LANGUAGES = ("zh", "en", "pt")
MACAU = "820000"

UI: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {
        "zh": MappingProxyType(
            {
                "title": "扫码核验",
                "at": "核验地",
                "scan_label": "扫码枪 / 手动输入健康码",
                "scan_hint": "扫码枪读出后按回车；全部出示后在空白处再按回车即核验",
                "add": "添加",
                "decide": "核验",
                "camera": "开启摄像头",
                "camera_stop": "关闭摄像头",
                "upload": "上传二维码图片",
                "codes": "已出示的码",
                "remove": "移除",
                "none_yet": "尚未出示任何码",
                "identity": "证件号",
                "explain": "判定依据",
                "next": "下一位（Esc）",
                "reason": "原因",
                "working": "核验中…",
                "GREEN": "通行",
                "YELLOW": "黄码 · 请核查",
                "RED": "红码 · 禁止通行",
                "GREY": "无法核验 · 禁止通行",
                "camera_error": "无法使用摄像头",
                "decode_error": "图片中没有可识别的二维码",
            }
        ),
        "en": MappingProxyType(
            {
                "title": "Checkpoint",
                "at": "Checkpoint at",
                "scan_label": "Scanner or typed health code",
                "scan_hint": "A scanner ends each code with Enter; Enter on an empty field decides",
                "add": "Add",
                "decide": "Decide",
                "camera": "Start camera",
                "camera_stop": "Stop camera",
                "upload": "Upload a QR image",
                "codes": "Codes presented",
                "remove": "Remove",
                "none_yet": "No code presented yet",
                "identity": "ID number",
                "explain": "Why",
                "next": "Next traveller (Esc)",
                "reason": "Reason",
                "working": "Checking…",
                "GREEN": "PASS",
                "YELLOW": "YELLOW · check further",
                "RED": "RED · do not pass",
                "GREY": "CANNOT VERIFY · do not pass",
                "camera_error": "The camera cannot be used",
                "decode_error": "No QR code could be read in the image",
            }
        ),
        "pt": MappingProxyType(
            {
                "title": "Posto de controlo",
                "at": "Posto de controlo em",
                "scan_label": "Leitor ou código de saúde escrito",
                "scan_hint": "O leitor termina cada código com Enter; Enter no campo vazio decide",
                "add": "Adicionar",
                "decide": "Decidir",
                "camera": "Ligar a câmara",
                "camera_stop": "Desligar a câmara",
                "upload": "Carregar imagem do código QR",
                "codes": "Códigos apresentados",
                "remove": "Retirar",
                "none_yet": "Nenhum código apresentado",
                "identity": "N.º do documento",
                "explain": "Porquê",
                "next": "Próximo viajante (Esc)",
                "reason": "Motivo",
                "working": "A verificar…",
                "GREEN": "PASSA",
                "YELLOW": "AMARELO · verificar",
                "RED": "VERMELHO · não passa",
                "GREY": "IMPOSSÍVEL VERIFICAR · não passa",
                "camera_error": "Não é possível usar a câmara",
                "decode_error": "Nenhum código QR legível na imagem",
            }
        ),
    }
)

_REASONS: dict[Reason, tuple[str, str]] = {
    Reason.OK: ("核验通过", "verified"),
    Reason.ERR_EMPTY: ("没有读到任何码", "no code was read"),
    Reason.ERR_FORMAT_UNKNOWN: ("不是本站认可的健康码", "not a health code recognised here"),
    Reason.ERR_FORMAT_UNSUPPORTED: ("此类码不受支持", "this kind of code is not supported"),
    Reason.ERR_TOO_LARGE: ("码的内容过长", "the code is too long"),
    Reason.ERR_ENCODING: ("码中含有无效字符", "the code holds invalid characters"),
    Reason.ERR_TRAILING_DATA: ("码已损坏（多余数据）", "the code is damaged (extra data)"),
    Reason.ERR_CHUNKS: ("请出示完整的码", "show the whole code, not a part of it"),
    Reason.ERR_BASE45: ("码已损坏，请重新扫描", "the code is damaged; scan it again"),
    Reason.ERR_BASE64: ("码已损坏，请重新扫描", "the code is damaged; scan it again"),
    Reason.ERR_NUMERIC: ("码已损坏，请重新扫描", "the code is damaged; scan it again"),
    Reason.ERR_JWS_FORMAT: ("码已损坏，请重新扫描", "the code is damaged; scan it again"),
    Reason.ERR_UTF8: ("码中的文字无效", "the code's text is invalid"),
    Reason.ERR_DECOMPRESS: ("码已损坏，无法解压", "the code is damaged and cannot be read"),
    Reason.ERR_DECOMPRESSED_TOO_LARGE: ("码的内容过大", "the code's content is too large"),
    Reason.ERR_COSE_STRUCTURE: ("码的结构无效", "the code's structure is invalid"),
    Reason.ERR_CBOR: ("码的内容无效", "the code's content is invalid"),
    Reason.ERR_CBOR_TAG: ("码的内容无效", "the code's content is invalid"),
    Reason.ERR_DUPLICATE_KEY: ("码的内容重复，可能被篡改", "the code repeats a field: tampered?"),
    Reason.ERR_NONCANONICAL: ("码的签名部分不规范", "the code's signed header is malformed"),
    Reason.ERR_TOO_DEEP: ("码的内容嵌套过深", "the code's content is nested too deep"),
    Reason.ERR_HEADER: ("码的签名信息无效", "the code's signature information is invalid"),
    Reason.ERR_ALG_NOT_ALLOWED: ("签名算法不被认可", "the signature algorithm is not accepted"),
    Reason.ERR_SIG_ENCODING: ("签名格式无效", "the signature is malformed"),
    Reason.ERR_SIGNATURE: (
        "签名不正确：码可能被伪造或篡改",
        "the signature is wrong: forged or altered",
    ),
    Reason.ERR_KEY_UNKNOWN: (
        "签发密钥未登记：无法确认真伪",
        "signed with a key not registered here",
    ),
    Reason.ERR_KEY_REVOKED: ("签发密钥已被吊销", "signed with a key that was revoked"),
    Reason.ERR_KEY_NOT_VALID: (
        "签发时密钥不在有效期内",
        "the key was not valid when it was issued",
    ),
    Reason.ERR_KEY_USAGE: (
        "该密钥无权签发此类证明",
        "the key may not sign this kind of certificate",
    ),
    Reason.ERR_ISSUER_UNKNOWN: ("签发机构未登记", "the issuer is not registered here"),
    Reason.ERR_ISSUER_MISMATCH: (
        "签发机构与码中所写不符",
        "the issuer does not match what the code says",
    ),
    Reason.ERR_CLAIMS: ("码的内容无效", "the code's content is invalid"),
    Reason.ERR_SCHEMA: ("码缺少必要内容", "the code lacks required content"),
    Reason.ERR_EXPIRED: ("码已过期，请重新申报", "the code has expired: declare again"),
    Reason.ERR_NOT_YET_VALID: ("码尚未生效", "the code is not valid yet"),
    Reason.ERR_TOO_OLD: ("码生成时间过久", "the code is too old"),
    Reason.ERR_REVOKED: ("该码已被签发机构撤销", "the issuer has revoked this code"),
    Reason.ERR_COLOUR_UNKNOWN: (
        "码的状态无法识别",
        "the code's state is not one this region issues",
    ),
    Reason.ERR_TRUST_STALE: ("本站的信任名单已过期", "this checkpoint's trust list is out of date"),
    Reason.ERR_CLOCK_UNTRUSTED: ("本站时钟不可信", "this checkpoint's clock cannot be trusted"),
    Reason.ERR_INTERNAL: ("系统内部错误", "an internal error"),
    Reason.ERR_KEY_WEAK: ("密钥强度不足", "the key is too weak"),
    Reason.ERR_KEY_PRIVATE: ("密钥设置错误", "the key is set up wrongly"),
    Reason.ERR_POP: ("密钥未经证明", "the key was not proven held"),
    Reason.ERR_IDENTIFIER: ("标识无效", "an identifier is invalid"),
    Reason.ERR_VERSION: ("版本冲突", "a version conflict"),
    Reason.ERR_REVOKED_KID: ("密钥已吊销", "the key was revoked"),
    Reason.ERR_PROFILE: ("签发地的格式定义有误", "the issuer's format definition is wrong"),
    Reason.ERR_ISSUER_UNAVAILABLE: (
        "签发地系统暂时无法连接，稍后再试",
        "the issuer cannot be reached now; try again",
    ),
    Reason.ERR_TOKEN_UNKNOWN: ("签发地不认识此码", "the issuer does not know this code"),
    Reason.ERR_ENVELOPE: ("码的格式无效", "the code's format is invalid"),
    Reason.ERR_POLICY: ("本地规则有误", "the local policy is wrong"),
    Reason.ERR_ISSUER_RETIRED: ("签发机构已停用", "the issuer was retired"),
    Reason.ERR_SECRET_UNAVAILABLE: (
        "本站缺少核验此码所需的密钥，请到中心核验点核验",
        "this checkpoint lacks the secret this code needs; verify it at the hub",
    ),
}

_DECISIONS: dict[DecisionReason, tuple[str, str, str]] = {
    DecisionReason.RECOGNISED: (
        "已按本地规则互认",
        "recognised under the local rules",
        "reconhecido pelas regras locais",
    ),
    DecisionReason.NO_RECOGNISED_CODE: (
        "没有本地认可的有效码",
        "no valid code recognised here",
        "nenhum código válido reconhecido aqui",
    ),
    DecisionReason.REQUIREMENT_UNMET: (
        "缺少本地要求的码（如本地健康码）",
        "a code required here is missing (such as the local one)",
        "falta um código exigido aqui (como o local)",
    ),
    DecisionReason.SUBJECT_MISMATCH: (
        "这些码不属于同一人",
        "these codes are not of one person",
        "estes códigos não são da mesma pessoa",
    ),
}


def language(requested: str | None, destination: str) -> str:
    """The page's language: the one asked for if the page has it, else Portuguese at Macau's
    checkpoints and Chinese elsewhere (Portuguese is offered only at Macau's)."""
    allowed = LANGUAGES if destination == MACAU else LANGUAGES[:2]
    if requested is not None and requested in allowed:
        return requested
    return "pt" if destination == MACAU else "zh"


def reason_words(reason: Reason, lang: str) -> str:
    """A reason code in plain words (Portuguese pages read the English sentence)."""
    zh, en = _REASONS[reason]
    return zh if lang == "zh" else en


def decision_words(reason: DecisionReason, lang: str) -> str:
    zh, en, pt = _DECISIONS[reason]
    return {"zh": zh, "en": en, "pt": pt}[lang]


def reason_table(lang: str) -> dict[str, str]:
    """Every reason and decision reason in plain words, for the page's script."""
    table = {r.value: reason_words(r, lang) for r in Reason}
    table.update({r.value: decision_words(r, lang) for r in DecisionReason})
    return table
