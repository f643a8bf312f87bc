//! SMS replies that mean "stop": `R`, `TD`, `T`, `N`, `退订` (and the
//! English `STOP`, `UNSUBSCRIBE` for numbers abroad), in any case, with
//! surrounding spaces or punctuation.

/// Whether `text` asks to stop receiving messages.
pub fn is_opt_out(text: &str) -> bool {
    let word: String = text
        .trim()
        .trim_matches(|c: char| {
            c.is_ascii_punctuation() || "。！，、".contains(c) || c.is_whitespace()
        })
        .to_uppercase();
    matches!(
        word.as_str(),
        "R" | "TD"
            | "T"
            | "N"
            | "退订"
            | "退"
            | "STOP"
            | "UNSUBSCRIBE"
            | "STOPALL"
            | "CANCEL"
            | "END"
            | "QUIT"
    )
}

#[cfg(test)]
mod tests {
    use super::is_opt_out;

    #[test]
    fn the_stop_words_opt_out() {
        for t in [
            "R",
            "r",
            " TD ",
            "t",
            "N",
            "退订",
            "退订。",
            "STOP",
            "stop!",
            "Unsubscribe",
        ] {
            assert!(is_opt_out(t), "{t:?}");
        }
    }

    #[test]
    fn other_replies_do_not() {
        for t in [
            "",
            "好的",
            "谢谢",
            "RR",
            "TDD",
            "what is this",
            "退订了吗我想再来",
            "No thanks",
        ] {
            assert!(!is_opt_out(t), "{t:?}");
        }
    }
}
