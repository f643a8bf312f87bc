//! The e-mail a message becomes: plain-text and HTML alternatives.
use crate::dispatch::provider::Outgoing;
use crate::templates::Rendered;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BuildError(String);

pub fn build(
    msg: &Outgoing,
    from: &str,
    _reply_to: Option<&str>,
) -> Result<lettre::Message, BuildError> {
    let Rendered::Email {
        subject,
        html,
        text,
    } = &msg.rendered
    else {
        return Err(BuildError("not an e-mail".into()));
    };
    lettre::Message::builder()
        .from(
            from.parse()
                .map_err(|e: lettre::address::AddressError| BuildError(e.to_string()))?,
        )
        .to(msg
            .address
            .parse()
            .map_err(|e: lettre::address::AddressError| BuildError(e.to_string()))?)
        .subject(subject.clone())
        .multipart(lettre::message::MultiPart::alternative_plain_html(
            text.clone(),
            html.clone(),
        ))
        .map_err(|e| BuildError(e.to_string()))
}

pub fn to_eml_bytes(m: &lettre::Message) -> Vec<u8> {
    m.formatted()
}
