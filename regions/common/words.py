"""The words every region's traveller page shares, in Chinese, English and Portuguese.

A region's own words (its name, its state words) are in its ``LOOK``; these are the form's
labels, the messages and the buttons. Every key has all three languages
(``tests/unit/regions/test_look.py``).
"""

from __future__ import annotations

from collections.abc import Mapping

WORDS: Mapping[str, Mapping[str, str]] = {
    "declare": {"zh": "健康申报", "en": "Health declaration", "pt": "Declaração de saúde"},
    "id_number": {"zh": "身份证号码", "en": "Resident ID number", "pt": "N.º do BI de residente"},
    "name": {"zh": "姓名", "en": "Name", "pt": "Nome"},
    "phone": {"zh": "手机号码", "en": "Mobile number", "pt": "N.º de telemóvel"},
    "trips": {
        "zh": "近14天行程（选填）",
        "en": "Trips in the last 14 days (optional)",
        "pt": "Viagens nos últimos 14 dias (opcional)",
    },
    "place": {"zh": "地点", "en": "Place", "pt": "Local"},
    "from": {"zh": "开始日期", "en": "From", "pt": "De"},
    "to": {"zh": "结束日期", "en": "To", "pt": "Até"},
    "add_trip": {"zh": "添加行程", "en": "Add a trip", "pt": "Adicionar viagem"},
    "symptoms": {"zh": "症状", "en": "Symptoms", "pt": "Sintomas"},
    "fever": {"zh": "发热", "en": "Fever", "pt": "Febre"},
    "cough": {"zh": "咳嗽", "en": "Cough", "pt": "Tosse"},
    "fatigue": {"zh": "乏力", "en": "Fatigue", "pt": "Fadiga"},
    "sore_throat": {"zh": "咽痛", "en": "Sore throat", "pt": "Dor de garganta"},
    "contact": {
        "zh": "我是密切接触者",
        "en": "I am a close contact of a case",
        "pt": "Sou contacto próximo de um caso",
    },
    "submit": {"zh": "提交申报", "en": "Submit", "pt": "Submeter"},
    "your_code": {"zh": "我的健康码", "en": "My health code", "pt": "O meu código de saúde"},
    "holder": {"zh": "身份证号", "en": "ID number", "pt": "N.º do BI"},
    "issued": {"zh": "生成时间", "en": "Issued", "pt": "Emitido"},
    "expires_in": {"zh": "有效期剩余", "en": "Valid for", "pt": "Válido por"},
    "expired": {"zh": "已过期", "en": "Expired", "pt": "Expirado"},
    "pending": {
        "zh": "审核中：后台核验完成后自动刷新",
        "en": "Review running: this page refreshes itself when the check is done",
        "pt": "Em análise: a página atualiza-se quando a verificação terminar",
    },
    "qr_alt": {"zh": "健康码二维码", "en": "Health code QR", "pt": "Código QR de saúde"},
    "print": {
        "zh": "下载二维码图片（打印用）",
        "en": "Download the QR image (for printing)",
        "pt": "Descarregar a imagem QR (para imprimir)",
    },
    "again": {"zh": "重新申报", "en": "Declare again", "pt": "Declarar de novo"},
    "appeal": {"zh": "申诉", "en": "Appeal", "pt": "Recurso"},
    "appeal_reason": {
        "zh": "申诉理由",
        "en": "Why is this colour wrong?",
        "pt": "Porque está esta cor errada?",
    },
    "appeal_submit": {"zh": "提交申诉", "en": "Send the appeal", "pt": "Enviar o recurso"},
    "appeal_filed": {"zh": "申诉已提交", "en": "Appeal filed", "pt": "Recurso enviado"},
    "appeal_check": {"zh": "查看进度", "en": "Check progress", "pt": "Ver progresso"},
    "appeal_open": {"zh": "处理中", "en": "open", "pt": "em curso"},
    "appeal_accepted": {"zh": "已通过", "en": "accepted", "pt": "aceite"},
    "appeal_rejected": {"zh": "未通过", "en": "rejected", "pt": "rejeitado"},
    "err_required": {"zh": "必填", "en": "Required", "pt": "Obrigatório"},
    "err_id_number": {
        "zh": "身份证号码格式或校验位有误",
        "en": "Not a valid resident ID number (18 characters, check digit)",
        "pt": "N.º de BI inválido (18 caracteres, dígito de controlo)",
    },
    "err_name": {
        "zh": "请填写姓名（最多32个字）",
        "en": "Enter a name of at most 32 characters",
        "pt": "Indique um nome com até 32 caracteres",
    },
    "err_phone": {
        "zh": "请填写11位手机号码",
        "en": "Enter an 11-digit mobile number starting with 1",
        "pt": "Indique um n.º de telemóvel de 11 dígitos",
    },
    "err_place": {
        "zh": "请填写地点（最多64个字）",
        "en": "Enter a place of at most 64 characters",
        "pt": "Indique um local com até 64 caracteres",
    },
    "err_dates": {
        "zh": "请填写开始和结束日期，结束不早于开始",
        "en": "Enter both dates; the end is not before the start",
        "pt": "Indique as duas datas; o fim não antes do início",
    },
    "err_reason": {
        "zh": "请填写申诉理由（最多500字）",
        "en": "Enter a reason of at most 500 characters",
        "pt": "Indique um motivo com até 500 caracteres",
    },
    "err_server": {"zh": "服务器", "en": "Server", "pt": "Servidor"},
    "err_network": {
        "zh": "网络错误，请重试",
        "en": "Network error, please try again",
        "pt": "Erro de rede, tente de novo",
    },
    "unknown_code": {
        "zh": "没有这个健康码",
        "en": "No such health code",
        "pt": "Código de saúde desconhecido",
    },
    "transfer": {"zh": "转码", "en": "Transfer (转码)", "pt": "Transferência (转码)"},
    "transfer_hint": {
        "zh": "全国平台按目的地政策核验后签发互认凭证，目的地据此转为当地健康码（仅绿码）",
        "en": "The national hub checks your code under the destination's policy and signs an "
        "attestation; the destination turns it into its own code (green only)",
        "pt": "A plataforma nacional verifica o seu código segundo a política do destino e assina "
        "um atestado; o destino converte-o no seu próprio código (só verde)",
    },
    "transfer_to": {"zh": "转码到", "en": "Transfer to", "pt": "Transferir para"},
    "attestation": {
        "zh": "互认凭证（全国）",
        "en": "Transfer attestation (national hub)",
        "pt": "Atestado de transferência (plataforma nacional)",
    },
    "destination": {"zh": "目的地", "en": "Destination", "pt": "Destino"},
    "valid_until": {"zh": "有效至", "en": "Valid until", "pt": "Válido até"},
    "convert": {
        "zh": "提交目的地转码",
        "en": "Convert at the destination",
        "pt": "Converter no destino",
    },
    "converted": {"zh": "转码结果", "en": "Converted code", "pt": "Código convertido"},
    "uses": {
        "zh": "本凭证已转码",
        "en": "Conversions of this attestation",
        "pt": "Conversões deste atestado",
    },
    "refused": {"zh": "未能转码", "en": "Transfer refused", "pt": "Transferência recusada"},
    "decision": {
        "zh": "目的地判定",
        "en": "Decision at the destination",
        "pt": "Decisão no destino",
    },
    "why_not_green": {
        "zh": "按目的地政策判定不是绿码，不签发互认凭证",
        "en": "Under the destination's policy the decision is not GREEN: no attestation",
        "pt": "Segundo a política do destino a decisão não é verde: sem atestado",
    },
    "why_transfer_off": {
        "zh": "目的地政策不允许转码",
        "en": "The destination's policy does not allow transfer",
        "pt": "A política do destino não permite transferência",
    },
    "why_source_not_valid": {
        "zh": "健康码当前无法核验为有效",
        "en": "Your code does not verify as valid now",
        "pt": "O seu código não é válido neste momento",
    },
    "why_expires_too_soon": {
        "zh": "健康码即将过期，请先更新",
        "en": "Your code expires too soon: renew it first",
        "pt": "O seu código expira em breve: renove-o primeiro",
    },
    "why_key_unavailable": {
        "zh": "全国平台暂不能签发凭证",
        "en": "The national hub cannot sign attestations now",
        "pt": "A plataforma nacional não pode assinar atestados agora",
    },
    "why_hub_unavailable": {
        "zh": "全国平台无响应，请稍后再试",
        "en": "The national hub did not answer; try again later",
        "pt": "A plataforma nacional não respondeu; tente mais tarde",
    },
    "why_destination_unavailable": {
        "zh": "目的地系统无响应，请稍后再试",
        "en": "The destination's system did not answer; try again later",
        "pt": "O sistema do destino não respondeu; tente mais tarde",
    },
    "why_destination_not_offered": {
        "zh": "不能转码到该地",
        "en": "Transfer to this region is not offered",
        "pt": "A transferência para esta região não está disponível",
    },
    "why_trust_stale": {
        "zh": "目的地暂不能核验凭证（信任列表已过期）",
        "en": "The destination cannot check attestations now (its trust list is stale)",
        "pt": "O destino não pode verificar atestados agora (lista de confiança desatualizada)",
    },
    "why_err_key_revoked": {
        "zh": "凭证的签名密钥已被吊销",
        "en": "The key that signed the attestation was revoked",
        "pt": "A chave que assinou o atestado foi revogada",
    },
    "why_err_expired": {
        "zh": "凭证已过期",
        "en": "The attestation has expired",
        "pt": "O atestado expirou",
    },
    "why_other_destination": {
        "zh": "凭证不是为该地签发的",
        "en": "The attestation was made for another region",
        "pt": "O atestado foi feito para outra região",
    },
    "why_identity_mismatch": {
        "zh": "身份证号与凭证不符",
        "en": "The ID number does not match the attestation",
        "pt": "O n.º do BI não corresponde ao atestado",
    },
    "why_use_limit": {
        "zh": "该凭证已达转码次数上限",
        "en": "This attestation has been converted the most times allowed",
        "pt": "Este atestado já foi convertido o número máximo de vezes",
    },
    "colour_green": {"zh": "绿码", "en": "GREEN", "pt": "verde"},
    "colour_yellow": {"zh": "黄码", "en": "YELLOW", "pt": "amarelo"},
    "colour_red": {"zh": "红码", "en": "RED", "pt": "vermelho"},
    "colour_grey": {"zh": "无法核验", "en": "CANNOT VERIFY", "pt": "não verificável"},
    "language": {"zh": "中文", "en": "English", "pt": "Português"},
}
"""Key -> language -> text. ``language`` is each language's own name, for the switch."""

JS_WORDS = (
    "err_required",
    "err_id_number",
    "err_name",
    "err_phone",
    "err_place",
    "err_dates",
    "err_reason",
    "err_server",
    "err_network",
    "expired",
    "appeal_filed",
    "appeal_open",
    "appeal_accepted",
    "appeal_rejected",
    "transfer_to",
    "destination",
    "valid_until",
    "uses",
    "refused",
    "decision",
    *(key for key in WORDS if key.startswith(("why_", "colour_"))),
)
"""The words the page's script needs; the page hands them over as ``data-`` attributes."""
