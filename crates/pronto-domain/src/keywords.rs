//! What an inbound text message means for consent, the way US carriers and Twilio treat keywords: the whole
//! message, trimmed and case-insensitive, is one keyword (so "Stop texting me about the sofa" is a reply for a
//! human, not an opt-out; carriers match the single word). Groundwork for the speed-to-lead issue.

/// The meaning of an inbound SMS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmsKeyword {
    /// Stop all messages from this sender: STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT (also OPTOUT, REVOKE).
    OptOut,
    /// Resume: START, YES, UNSTOP (also OPTIN).
    OptIn,
    /// Send the help text: HELP, INFO.
    Help,
    /// Anything else: a reply for a person.
    Reply,
}

pub fn classify(body: &str) -> SmsKeyword {
    let word: String = body
        .trim()
        .trim_matches(|c: char| c.is_ascii_punctuation() || c.is_whitespace())
        .to_ascii_uppercase();
    match word.as_str() {
        "STOP" | "STOPALL" | "UNSUBSCRIBE" | "CANCEL" | "END" | "QUIT" | "OPTOUT" | "REVOKE" => {
            SmsKeyword::OptOut
        }
        "START" | "YES" | "UNSTOP" | "OPTIN" => SmsKeyword::OptIn,
        "HELP" | "INFO" => SmsKeyword::Help,
        _ => SmsKeyword::Reply,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_are_whole_messages_in_any_case() {
        let cases = [
            ("STOP", SmsKeyword::OptOut),
            (" stop ", SmsKeyword::OptOut),
            ("Stop.", SmsKeyword::OptOut),
            ("unsubscribe", SmsKeyword::OptOut),
            ("Quit", SmsKeyword::OptOut),
            ("START", SmsKeyword::OptIn),
            ("unstop", SmsKeyword::OptIn),
            ("yes", SmsKeyword::OptIn),
            ("help", SmsKeyword::Help),
            ("INFO", SmsKeyword::Help),
            ("Stop texting me about the sofa", SmsKeyword::Reply),
            ("Yes please call me at 5", SmsKeyword::Reply),
            ("", SmsKeyword::Reply),
        ];
        for (body, want) in cases {
            assert_eq!(classify(body), want, "{body:?}");
        }
    }
}
