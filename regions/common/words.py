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
)
"""The words the page's script needs; the page hands them over as ``data-`` attributes."""
