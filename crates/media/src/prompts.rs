//! The spoken prompts of voicemail and of the external-call unlock, compiled in from `crates/media/prompts/`
//! (8 kHz 16-bit mono PCM WAV, made by `scripts/make-prompts.sh`, which holds the texts).
//!
//! Compiled in rather than read at run time, so a PBX never starts with a prompt missing and a call never waits
//! on a disk. Counts are spoken by chaining prompts: [`Prompt::YouHave`], [`Prompt::Digit`], then
//! [`Prompt::NewMessages`].

use crate::wav;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Prompt {
    /// "The person you are calling is not available. Please leave a message after the tone. Press the pound
    /// key when you are done."
    GreetingDefault,
    /// "Please enter your voicemail PIN, then press the pound key."
    EnterPin,
    /// "That PIN is not correct."
    PinWrong,
    /// "Too many wrong PINs."
    TooMany,
    /// "Goodbye."
    Goodbye,
    /// "You have"
    YouHave,
    /// "new messages."
    NewMessages,
    /// "saved messages."
    OldMessages,
    /// "Message"
    Message,
    /// "Press 1 to repeat, 6 for the next message, 7 to delete it, 9 to record your greeting, or star to hang
    /// up."
    Menu,
    /// "Message deleted."
    Deleted,
    /// "There are no more messages. Press 9 to record your greeting, or star to hang up."
    NoMore,
    /// "Record your greeting after the tone, then press the pound key."
    RecordGreeting,
    /// "Your greeting is saved."
    GreetingSaved,
    /// "Your message is saved. Goodbye."
    MessageSaved,
    /// "The mailbox is full. Please try again later."
    MailboxFull,
    /// "This mailbox is locked. Try again later." (too many wrong PINs across calls)
    MailboxLocked,
    /// "To unlock external calls, enter your voicemail PIN, then press the pound key."
    UnlockEnterPin,
    /// "External calls are unlocked."
    UnlockDone,
    /// "Please enter the conference PIN, then press the pound key."
    ConferenceEnterPin,
    /// "This conference is locked. Try again later."
    ConferenceLocked,
    /// "This conference is full. Please try again later."
    ConferenceFull,
    /// "That is not a valid choice."
    AttendantInvalid,
    /// "This call is recorded."
    RecordingNotice,
    /// "zero" to "nine". Only the last decimal digit counts: `Digit(12)` says "two", so a caller spelling out a
    /// number passes one digit at a time and a wrong value still says something rather than failing.
    Digit(u8),
}

const DIGITS: [(&str, &[u8]); 10] = [
    ("digit-0", include_bytes!("../prompts/digit-0.wav")),
    ("digit-1", include_bytes!("../prompts/digit-1.wav")),
    ("digit-2", include_bytes!("../prompts/digit-2.wav")),
    ("digit-3", include_bytes!("../prompts/digit-3.wav")),
    ("digit-4", include_bytes!("../prompts/digit-4.wav")),
    ("digit-5", include_bytes!("../prompts/digit-5.wav")),
    ("digit-6", include_bytes!("../prompts/digit-6.wav")),
    ("digit-7", include_bytes!("../prompts/digit-7.wav")),
    ("digit-8", include_bytes!("../prompts/digit-8.wav")),
    ("digit-9", include_bytes!("../prompts/digit-9.wav")),
];

impl Prompt {
    /// Every prompt once, digits 0 to 9 included.
    pub const ALL: [Prompt; 34] = [
        Prompt::GreetingDefault,
        Prompt::EnterPin,
        Prompt::PinWrong,
        Prompt::TooMany,
        Prompt::Goodbye,
        Prompt::YouHave,
        Prompt::NewMessages,
        Prompt::OldMessages,
        Prompt::Message,
        Prompt::Menu,
        Prompt::Deleted,
        Prompt::NoMore,
        Prompt::RecordGreeting,
        Prompt::GreetingSaved,
        Prompt::MessageSaved,
        Prompt::MailboxFull,
        Prompt::MailboxLocked,
        Prompt::UnlockEnterPin,
        Prompt::UnlockDone,
        Prompt::ConferenceEnterPin,
        Prompt::ConferenceLocked,
        Prompt::ConferenceFull,
        Prompt::AttendantInvalid,
        Prompt::RecordingNotice,
        Prompt::Digit(0),
        Prompt::Digit(1),
        Prompt::Digit(2),
        Prompt::Digit(3),
        Prompt::Digit(4),
        Prompt::Digit(5),
        Prompt::Digit(6),
        Prompt::Digit(7),
        Prompt::Digit(8),
        Prompt::Digit(9),
    ];

    /// The prompt's id: its file name in `crates/media/prompts/` without `.wav`, e.g. `vm-enter-pin`.
    pub fn id(self) -> &'static str {
        self.entry().0
    }

    /// The WAV file: 8 kHz 16-bit mono PCM, as [`wav::decode`] reads it.
    pub fn wav(self) -> &'static [u8] {
        self.entry().1
    }

    /// The decoded samples. The files are checked by this module's tests, so the empty result for a file that
    /// does not decode is never seen in a tested build; it keeps a bad file from panicking a call.
    pub fn samples(self) -> Vec<i16> {
        decode_or_empty(self.wav())
    }

    fn entry(self) -> (&'static str, &'static [u8]) {
        macro_rules! file {
            ($id:literal) => {
                ($id, include_bytes!(concat!("../prompts/", $id, ".wav")))
            };
        }
        match self {
            Prompt::GreetingDefault => file!("vm-greeting-default"),
            Prompt::EnterPin => file!("vm-enter-pin"),
            Prompt::PinWrong => file!("vm-pin-wrong"),
            Prompt::TooMany => file!("vm-too-many"),
            Prompt::Goodbye => file!("vm-goodbye"),
            Prompt::YouHave => file!("vm-you-have"),
            Prompt::NewMessages => file!("vm-new-messages"),
            Prompt::OldMessages => file!("vm-old-messages"),
            Prompt::Message => file!("vm-message"),
            Prompt::Menu => file!("vm-menu"),
            Prompt::Deleted => file!("vm-deleted"),
            Prompt::NoMore => file!("vm-no-more"),
            Prompt::RecordGreeting => file!("vm-record-greeting"),
            Prompt::GreetingSaved => file!("vm-greeting-saved"),
            Prompt::MessageSaved => file!("vm-message-saved"),
            Prompt::MailboxFull => file!("vm-mailbox-full"),
            Prompt::MailboxLocked => file!("vm-mailbox-locked"),
            Prompt::UnlockEnterPin => file!("unlock-enter-pin"),
            Prompt::UnlockDone => file!("unlock-done"),
            Prompt::ConferenceEnterPin => file!("conf-enter-pin"),
            Prompt::ConferenceLocked => file!("conf-locked"),
            Prompt::ConferenceFull => file!("conf-full"),
            Prompt::AttendantInvalid => file!("att-invalid"),
            Prompt::RecordingNotice => file!("rec-notice"),
            Prompt::Digit(n) => DIGITS[usize::from(n % 10)],
        }
    }
}

fn decode_or_empty(bytes: &[u8]) -> Vec<i16> {
    wav::decode(bytes).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn rms(samples: &[i16]) -> f64 {
        let sum: f64 = samples.iter().map(|&s| f64::from(s).powi(2)).sum();
        (sum / samples.len().max(1) as f64).sqrt()
    }

    #[test]
    fn every_prompt_decodes_to_audible_speech_of_a_sensible_length() {
        for p in Prompt::ALL {
            let samples = wav::decode(p.wav()).unwrap_or_else(|e| panic!("{p:?}: {e}"));
            assert_eq!(p.samples(), samples, "{p:?}");
            let ms = wav::duration_ms(samples.len());
            assert!((300..=12_000).contains(&ms), "{p:?}: {ms} ms");
            // Normalised speech sits near -20 dBFS RMS (3000+); 1000 is -30 dBFS.
            let level = rms(&samples);
            assert!(level > 1000.0, "{p:?}: RMS {level:.0}");
        }
    }

    #[test]
    fn files_are_plain_and_trimmed() {
        for p in Prompt::ALL {
            let bytes = p.wav();
            // RIFF, WAVE, a 16-byte fmt chunk, then data at 36: no metadata chunks to skip.
            assert_eq!(&bytes[..4], b"RIFF", "{p:?}");
            assert_eq!(&bytes[12..20], b"fmt \x10\x00\x00\x00", "{p:?}");
            assert_eq!(&bytes[36..40], b"data", "{p:?}");
            let samples = p.samples();
            // Speech starts within the first 20 ms (above -45 dBFS)...
            assert!(
                samples[..160].iter().any(|s| s.unsigned_abs() > 180),
                "{p:?}"
            );
            // ... and ends in 150 ms of digital silence.
            let tail = &samples[samples.len() - 1200..];
            assert!(tail.iter().all(|&s| s == 0), "{p:?}");
            assert_ne!(samples[samples.len() - 1201], 0, "{p:?}: longer silence");
        }
    }

    #[test]
    fn all_lists_every_prompt_once_with_its_own_file() {
        let ids: HashSet<&str> = Prompt::ALL.iter().map(|p| p.id()).collect();
        assert_eq!(ids.len(), Prompt::ALL.len());
        let files: HashSet<&[u8]> = Prompt::ALL.iter().map(|p| p.wav()).collect();
        assert_eq!(files.len(), Prompt::ALL.len(), "two prompts share a file");
        assert_eq!(Prompt::EnterPin.id(), "vm-enter-pin");
        assert_eq!(Prompt::UnlockDone.id(), "unlock-done");
        assert_eq!(Prompt::Digit(7).id(), "digit-7");
    }

    #[test]
    fn digits_past_nine_use_the_last_decimal_digit() {
        assert_eq!(Prompt::Digit(12).wav(), Prompt::Digit(2).wav());
        assert_eq!(Prompt::Digit(10).id(), "digit-0");
        assert_eq!(Prompt::Digit(255).id(), "digit-5");
        assert_ne!(Prompt::Digit(1).wav(), Prompt::Digit(2).wav());
    }

    #[test]
    fn a_file_that_does_not_decode_plays_as_nothing() {
        assert!(decode_or_empty(b"").is_empty());
        assert!(decode_or_empty(b"RIFF\x04\x00\x00\x00WAVE").is_empty());
        let mut cut = Prompt::Goodbye.wav().to_vec();
        cut.truncate(cut.len() / 2);
        assert!(decode_or_empty(&cut).is_empty());
        assert!(!decode_or_empty(Prompt::Goodbye.wav()).is_empty());
    }
}
