//! Opt-out / opt-in keywords: a customer who answers "SAIR" to a broadcast stops
//! receiving business-initiated messages; "VOLTAR" brings them back.
//!
//! Only a message that *is* the keyword counts (after folding case, accents,
//! punctuation and emoji): "quero cancelar meu pedido" is a request for an agent,
//! not an opt-out, and must never silence a customer.

use crate::text::fold_for_match;
use serde::{Deserialize, Serialize};

/// What a whole message says about consent to business-initiated messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Consent {
    OptOut,
    OptIn,
}

/// Whole messages that mean "stop sending me messages" (folded form). Single words a customer
/// also says for other things ("cancelar" an order, "para" as in "para quem", "remover" a
/// product, a quick-reply button "Cancelar") are left out on purpose.
pub const OPT_OUT: &[&str] = &[
    "sair",
    "quero sair",
    "sair da lista",
    "parar",
    "pare",
    "parar de receber",
    "nao quero receber",
    "nao quero receber mais",
    "nao quero mais receber",
    "nao quero mais",
    "nao envie mais",
    "nao me envie mais",
    "nao mande mais",
    "nao me mande mais",
    "stop",
    "unsubscribe",
    "opt out",
    "optout",
    "cancelar inscricao",
    "cancelar mensagens",
    "descadastrar",
    "descadastre",
    "descadastrar me",
    "me descadastre",
    "me descadastrar",
    "me tira da lista",
    "me tire da lista",
    "me remova",
    "remover da lista",
];

/// Whole messages that mean "you may message me again" (folded form). Words a
/// customer also uses for other requests ("cadastrar", "assinar", "bloquear")
/// are left out on purpose.
pub const OPT_IN: &[&str] = &[
    "voltar",
    "quero voltar",
    "voltar a receber",
    "aceito",
    "eu aceito",
    "sim quero",
    "sim eu quero",
    "quero receber",
    "quero receber mensagens",
    "start",
    "subscribe",
    "opt in",
    "optin",
];

/// The consent a message expresses when the whole message is a keyword.
pub fn classify(text: &str) -> Option<Consent> {
    let folded = fold_for_match(text);
    // Punctuation, emoji and hyphens separate words ("descadastrar-me", "SAIR!!!").
    let words: Vec<&str> = folded
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    if words.is_empty() || words.len() > 6 {
        return None;
    }
    let phrase = words.join(" ");
    if OPT_OUT.contains(&phrase.as_str()) {
        Some(Consent::OptOut)
    } else if OPT_IN.contains(&phrase.as_str()) {
        Some(Consent::OptIn)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn keywords_in_any_case_and_punctuation() {
        for t in [
            "SAIR",
            "sair",
            "  Sair!!! ",
            "PARAR.",
            "Stop",
            "cancelar inscrição",
            "DESCADASTRAR",
            "descadastrar-me",
            "Não quero mais",
            "NAO QUERO MAIS",
            "não quero mais!",
            "sair 👋",
            "Me tire da lista",
        ] {
            assert_eq!(classify(t), Some(Consent::OptOut), "{t}");
        }
        for t in [
            "VOLTAR",
            "Aceito",
            "sim, quero",
            "Sim quero!",
            "START",
            "quero receber",
        ] {
            assert_eq!(classify(t), Some(Consent::OptIn), "{t}");
        }
    }

    #[test]
    fn sentences_with_a_keyword_are_not_consent() {
        for t in [
            "quero cancelar meu pedido",
            "Quero CANCELAR minha assinatura",
            "como faço para sair do plano?",
            "não consigo parar de rir",
            "stop the order please",
            "pode voltar a ligar amanhã?",
            "aceito o boleto",
            "sim",
            "não",
            "",
            "   ",
            "🙂",
            "sairr",
            "parada",
            // Alone, these answer a question more often than they ask to leave.
            "Cancelar",
            "para",
            "remover",
        ] {
            assert_eq!(classify(t), None, "{t}");
        }
    }

    #[test]
    fn keyword_lists_are_folded_and_disjoint() {
        for k in OPT_OUT.iter().chain(OPT_IN) {
            assert_eq!(fold_for_match(k), *k);
            assert!(!k.contains(|c: char| !c.is_alphanumeric() && c != ' '));
        }
        assert!(OPT_OUT.iter().all(|k| !OPT_IN.contains(k)));
    }

    proptest! {
        #[test]
        fn never_panics(t in "\\PC{0,60}") {
            let _ = classify(&t);
        }

        #[test]
        fn a_keyword_inside_a_longer_sentence_is_not_consent(
            before in "[a-z]{3,8}", after in "[a-z]{3,8}"
        ) {
            let sentence = format!("{before} cancelar {after} agora");
            prop_assert_eq!(classify(&sentence), None);
        }
    }
}
