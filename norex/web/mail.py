"""The dashboard's one email: a login link, sent through the SMTP server the settings name."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage

from norex.errors import NorexError
from norex.settings import Settings


class MailFailed(NorexError):
    """The SMTP server could not be reached or refused the message (nothing of it is logged)."""


def login_message(settings: Settings, to: str, link: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = settings.smtp_from
    message["To"] = to
    message["Subject"] = "Your NorexVPN login link"
    message.set_content(
        "Open this link to log in to your NorexVPN dashboard:\n\n"
        f"{link}\n\n"
        "It works once and expires in 15 minutes. If you did not ask for it, ignore this email: "
        "nothing happens without it.\n"
    )
    return message


def send(settings: Settings, message: EmailMessage, timeout: float = 20) -> None:
    if not settings.smtp_host:
        raise MailFailed("NOREX_SMTP_HOST is not set")
    try:
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=timeout) as smtp:
            if settings.smtp_starttls:
                smtp.starttls()
            if settings.smtp_username and settings.smtp_password is not None:
                smtp.login(settings.smtp_username, settings.smtp_password.get_secret_value())
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        raise MailFailed(f"the SMTP server refused or could not be reached ({type(exc).__name__})") from None
