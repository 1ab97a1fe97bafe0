//! Graph API failures and what to do about them.
//!
//! Meta's guidance is to branch on the numeric `code` only: titles change and the
//! same code arrives with different HTTP statuses. The retry column of the error table
//! in `whatsapp-cloud-api.md` §8 is encoded in [`disposition_for_code`].

use serde_json::Value;

use crate::lenient;

/// One Graph API failure. Meta says: branch on `code`, never on the title or HTTP status.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum GraphError {
    #[error("Graph API error {code}: {message}")]
    Api {
        http_status: u16,
        code: i64,
        subcode: Option<i64>,
        message: String,
        details: Option<String>,
        /// Quote it to Meta support.
        fbtrace_id: Option<String>,
        /// `error_user_title` / `error_user_msg`: what Meta wants shown to a person, verbatim
        /// (template creation and edit refusals carry the rule broken here). Boxed: rare, and
        /// it keeps every `Result<_, GraphError>` small.
        user: Option<Box<UserMessage>>,
    },
    #[error("network error: {0}")]
    Network(String),
    #[error("timed out")]
    Timeout,
    /// A response that is not Graph's error shape, or a request that could not be built
    /// (then `http_status` is 0: nothing was sent).
    #[error("unexpected Graph API response (HTTP {http_status}): {body}")]
    Unexpected { http_status: u16, body: String },
}

/// What Meta wants shown to a person about a refusal (`error_user_title`, `error_user_msg`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserMessage {
    pub title: Option<String>,
    pub message: Option<String>,
}

impl UserMessage {
    fn from_parts(title: Option<String>, message: Option<String>) -> Option<Box<UserMessage>> {
        (title.is_some() || message.is_some()).then(|| Box::new(UserMessage { title, message }))
    }
}

/// What the outbox should do with a message whose send failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Retry with backoff; `min_delay_secs` is a floor (131056 pair rate limit: 6 s).
    Retry {
        min_delay_secs: u64,
        max_attempts: u32,
    },
    /// Never retry; the message fails with this code.
    Permanent,
    /// Token expired/invalid (190, 0): fail and mark the channel unhealthy.
    InvalidToken,
}

/// Attempts for throttling and outages that clear by themselves.
pub const MANY_ATTEMPTS: u32 = 10;
/// Attempts for transport failures and unexplained server errors.
pub const DEFAULT_ATTEMPTS: u32 = 5;
/// Attempts for 131000 "something went wrong", which is as often permanent as not.
pub const FEW_ATTEMPTS: u32 = 3;

/// Error bodies can be whole HTML pages; a log line needs only the start.
const MAX_BODY_IN_ERROR: usize = 1024;

impl GraphError {
    /// The Graph error code, for [`GraphError::Api`] only.
    pub fn code(&self) -> Option<i64> {
        match self {
            GraphError::Api { code, .. } => Some(*code),
            _ => None,
        }
    }

    pub fn http_status(&self) -> Option<u16> {
        match self {
            GraphError::Api { http_status, .. } | GraphError::Unexpected { http_status, .. } => {
                Some(*http_status)
            }
            GraphError::Network(_) | GraphError::Timeout => None,
        }
    }

    pub fn disposition(&self) -> Disposition {
        match self {
            GraphError::Api {
                code, http_status, ..
            } => disposition_for_code(*code, *http_status),
            // A timed-out send may still have been accepted; the server accepts that
            // rare duplicate over losing the message.
            GraphError::Network(_) | GraphError::Timeout => Disposition::Retry {
                min_delay_secs: 1,
                max_attempts: DEFAULT_ATTEMPTS,
            },
            GraphError::Unexpected { http_status, .. } => by_http_status(*http_status),
        }
    }

    /// The pt-BR sentence an agent sees for this failure.
    pub fn explain_pt_br(&self) -> String {
        match self {
            // Template management refusals come as (#100) with the rule in a 2388xxx subcode.
            GraphError::Api {
                subcode: Some(sub @ 2388000..=2388999),
                ..
            } => explain_pt_br(*sub),
            GraphError::Api { code, .. } => explain_pt_br(*code),
            GraphError::Network(_) => {
                "Falha de rede ao contatar a API do WhatsApp; a mensagem não foi enviada.".into()
            }
            GraphError::Timeout => {
                "A API do WhatsApp não respondeu a tempo; a mensagem pode não ter sido enviada."
                    .into()
            }
            GraphError::Unexpected { http_status, .. } => {
                format!("A API do WhatsApp deu uma resposta inesperada (HTTP {http_status}).")
            }
        }
    }

    /// Classifies a non-2xx Graph response from its status and body.
    ///
    /// Graph's body is `{"error":{"message","type","code","error_subcode",
    /// "error_data":{"details"},"fbtrace_id"}}`; `code` may arrive as a string through
    /// proxies. Anything else becomes [`GraphError::Unexpected`].
    pub fn from_response(http_status: u16, body: &[u8]) -> GraphError {
        let error = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v.get("error").filter(|e| e.is_object()).cloned());
        let code = error
            .as_ref()
            .and_then(|e| e.get("code"))
            .and_then(lenient::to_i64);
        match (error, code) {
            (Some(error), Some(code)) => {
                let text = |pointer: &str| error.pointer(pointer).and_then(lenient::to_string);
                GraphError::Api {
                    http_status,
                    code,
                    subcode: error.get("error_subcode").and_then(lenient::to_i64),
                    message: text("/message").unwrap_or_default(),
                    details: text("/error_data/details"),
                    fbtrace_id: text("/fbtrace_id"),
                    user: UserMessage::from_parts(
                        text("/error_user_title"),
                        text("/error_user_msg"),
                    ),
                }
            }
            _ => GraphError::Unexpected {
                http_status,
                body: body_excerpt(body),
            },
        }
    }
}

/// The start of a response body, lossily decoded, for error messages.
pub(crate) fn body_excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    match text.char_indices().nth(MAX_BODY_IN_ERROR) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.into_owned(),
    }
}

fn retry(min_delay_secs: u64, max_attempts: u32) -> Disposition {
    Disposition::Retry {
        min_delay_secs,
        max_attempts,
    }
}

fn by_http_status(http_status: u16) -> Disposition {
    if http_status == 429 || (500..=599).contains(&http_status) {
        retry(2, DEFAULT_ATTEMPTS)
    } else {
        Disposition::Permanent
    }
}

/// Disposition by code, following the retry column of the error table.
///
/// Codes without an entry fall back to the HTTP status: 429 and 5xx are retried,
/// everything else (131047, 131026, 132xxx, 368, 10, 200-299, ...) is permanent.
pub fn disposition_for_code(code: i64, http_status: u16) -> Disposition {
    match code {
        0 | 190 => Disposition::InvalidToken,
        // Throughput is counted per second, so the limit clears fast.
        130429 => retry(1, MANY_ATTEMPTS),
        // Graph and WABA call-rate limits are counted over rolling windows of minutes.
        4 | 613 | 80007 => retry(30, MANY_ATTEMPTS),
        131016 => retry(5, MANY_ATTEMPTS),
        // Graph's generic "unknown error" and "service unavailable".
        1 | 2 => retry(2, DEFAULT_ATTEMPTS),
        131056 => retry(6, MANY_ATTEMPTS),
        131000 => retry(2, FEW_ATTEMPTS),
        // Maintenance lasts minutes, not seconds.
        131057 => retry(60, DEFAULT_ATTEMPTS),
        3
        | 10
        | 368
        | 130472
        | 130497
        | 131005
        | 131008
        | 131009
        | 131021
        | 131026
        | 131030
        | 131031
        | 131037
        | 131042
        | 131045
        | 131047
        | 131048
        | 131049
        | 131050
        | 131051
        | 131052
        | 131053
        | 131062..=131064
        | 132000..=132999
        | 133000..=133999
        | 135000
        | 137000
        | 200..=299
        | 2388000..=2388999 => Disposition::Permanent,
        _ => by_http_status(http_status),
    }
}

/// A pt-BR sentence the agent sees for a failed message, for every code in the table
/// of `whatsapp-cloud-api.md` §8, and a generic fallback that includes the code.
pub fn explain_pt_br(code: i64) -> String {
    let known = match code {
        0 => "Falha de autenticação na API do WhatsApp: o token de acesso do canal não é válido.",
        1 | 131000 => "Erro desconhecido na Meta ao processar a mensagem.",
        2 | 131016 => "Serviço do WhatsApp temporariamente indisponível.",
        3 => "O aplicativo não tem a permissão ou a capacidade necessária para esta operação.",
        4 | 613 => "Limite de chamadas do aplicativo à API da Meta atingido.",
        10 => "Permissão negada: o token não tem a permissão necessária para este número.",
        190 => {
            "O token de acesso do canal expirou ou é inválido: gere um novo token e atualize o canal."
        }
        200..=299 => "Permissão da API não concedida ou removida para este aplicativo.",
        368 => "A conta foi bloqueada temporariamente pela Meta por violação de políticas.",
        80007 => "Limite de requisições da conta do WhatsApp Business (WABA) atingido.",
        130429 => "Limite de mensagens por segundo do número atingido.",
        130472 => {
            "O número do cliente faz parte de um experimento da Meta e não recebeu esta mensagem de marketing."
        }
        130497 => {
            "A conta do WhatsApp Business não pode enviar mensagens para clientes deste país."
        }
        131005 => "Acesso negado: o token não tem permissão para enviar por este número.",
        131008 => "Falta um parâmetro obrigatório na requisição enviada à Meta.",
        131009 => {
            "Valor de parâmetro inválido (por exemplo, número de destino ou ID de mídia incorreto)."
        }
        131021 => "O destinatário não pode ser o próprio número remetente.",
        131026 => {
            "Mensagem não entregue: o número pode não ter WhatsApp, usar uma versão antiga do aplicativo, não ter aceitado os termos ou ter bloqueado a empresa."
        }
        131030 => {
            "O número do destinatário não está na lista de números permitidos da conta de teste."
        }
        131031 => "A conta do WhatsApp Business está bloqueada ou restrita pela Meta.",
        131037 => "O nome de exibição do número ainda não foi aprovado pela Meta.",
        131042 => "Problema de elegibilidade ou de pagamento na conta do WhatsApp Business.",
        131045 => "Erro no registro do número de telefone (certificado incorreto).",
        131047 => {
            "Mais de 24 horas desde a última mensagem do cliente: só é possível enviar um modelo (HSM) aprovado."
        }
        131048 => {
            "Limite de spam atingido: muitas mensagens deste número foram bloqueadas ou denunciadas. Tente mais tarde e verifique a qualidade do número."
        }
        131049 => {
            "A Meta não entregou esta mensagem de marketing para preservar o engajamento do cliente; tente novamente só depois de 24 horas."
        }
        131050 => "O cliente optou por não receber mensagens de marketing.",
        131051 => "Tipo de mensagem não suportado pelo WhatsApp.",
        131052 => {
            "Não foi possível baixar a mídia enviada pelo cliente: peça que ele a envie de novo."
        }
        131053 => {
            "Não foi possível enviar a mídia: arquivo inacessível, de tipo não suportado ou grande demais."
        }
        131056 => "Muitas mensagens seguidas para o mesmo cliente em pouco tempo.",
        131057 => "A conta do WhatsApp Business está em manutenção.",
        131062 => "Este tipo de identificador de destinatário não é suportado para o envio.",
        131063 => "Modelos de marketing estão desativados para esta conta na Cloud API.",
        131064 => "Limite de mensagens atingido por violações na classificação de modelos.",
        132000 => "O número de parâmetros não corresponde ao definido no modelo (HSM).",
        132001 => "O modelo (HSM) não existe neste idioma ou ainda não foi aprovado.",
        132005 => "O texto do modelo (HSM) com os parâmetros preenchidos ficou longo demais.",
        132007 => {
            "O conteúdo do modelo (HSM) viola as políticas de formato ou de conteúdo do WhatsApp."
        }
        132008 => "Valor de parâmetro inválido para o modelo (HSM).",
        132012 => "O formato de um parâmetro não corresponde ao definido no modelo (HSM).",
        132015 => "O modelo (HSM) está pausado por baixa qualidade.",
        132016 => "O modelo (HSM) foi desativado por ter sido pausado muitas vezes.",
        132068 => "O fluxo (Flow) está bloqueado.",
        132069 => "O fluxo (Flow) foi limitado por excesso de envios.",
        133010 => "O número de telefone não está registrado na Cloud API.",
        133016 => {
            "Muitas tentativas de registro ou de cancelamento de registro do número; aguarde antes de tentar de novo."
        }
        135000 => "Erro genérico do usuário ao enviar a mensagem.",
        137000 => "A chave de identidade do cliente mudou; a mensagem não foi enviada.",
        100 => "A Meta recusou um parâmetro da requisição (parâmetro inválido).",
        803 => {
            "O objeto pedido (conta, número ou modelo) não existe ou o token não tem acesso a ele."
        }
        2500 => "Caminho desconhecido na API da Meta: confira a versão e os IDs configurados.",
        2388019 => "Limite de modelos (HSM) da conta do WhatsApp Business atingido.",
        2388023 => {
            "Este modelo (HSM) está sendo excluído; aguarde a exclusão terminar para usar o nome de novo."
        }
        2388024 => "Já existe um modelo (HSM) com este nome neste idioma.",
        2388040 => "Um campo do modelo (HSM) excede o limite de caracteres.",
        2388047 => "Formato inválido no cabeçalho ou no corpo do modelo (HSM).",
        2388073 => "Formato inválido no rodapé do modelo (HSM).",
        2388293 => "O modelo (HSM) tem variáveis demais para o tamanho do texto.",
        2388299 => "O modelo (HSM) não pode começar nem terminar com uma variável.",
        _ => return format!("A API do WhatsApp recusou a mensagem (erro {code})."),
    };
    known.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every code of the table in `whatsapp-cloud-api.md` §8.
    const DOCUMENTED: &[i64] = &[
        0, 3, 4, 10, 190, 200, 250, 299, 368, 80007, 130429, 130472, 130497, 131000, 131005,
        131008, 131009, 131016, 131021, 131026, 131030, 131031, 131037, 131042, 131045, 131047,
        131048, 131049, 131050, 131051, 131052, 131053, 131056, 131057, 131062, 131063, 131064,
        132000, 132001, 132005, 132007, 132008, 132012, 132015, 132016, 132068, 132069, 133010,
        133016, 135000, 137000, 100, 803, 2500, 2388019, 2388023, 2388024, 2388040, 2388047,
        2388073, 2388293, 2388299,
    ];

    #[test]
    fn disposition_table() {
        use Disposition::*;
        let many = |min| Retry {
            min_delay_secs: min,
            max_attempts: MANY_ATTEMPTS,
        };
        let cases: &[(i64, u16, Disposition)] = &[
            (130429, 429, many(1)),
            (80007, 400, many(30)),
            (4, 400, many(30)),
            (131016, 503, many(5)),
            (
                131056,
                400,
                Retry {
                    min_delay_secs: 6,
                    max_attempts: MANY_ATTEMPTS,
                },
            ),
            (
                131000,
                500,
                Retry {
                    min_delay_secs: 2,
                    max_attempts: FEW_ATTEMPTS,
                },
            ),
            (
                131000,
                400,
                Retry {
                    min_delay_secs: 2,
                    max_attempts: FEW_ATTEMPTS,
                },
            ),
            (190, 401, InvalidToken),
            (190, 400, InvalidToken),
            (0, 401, InvalidToken),
            (131047, 400, Permanent),
            (131026, 400, Permanent),
            (131051, 400, Permanent),
            (131053, 400, Permanent),
            (132000, 400, Permanent),
            (132001, 404, Permanent),
            (132015, 400, Permanent),
            (368, 403, Permanent),
            (131031, 400, Permanent),
            (131048, 400, Permanent),
            (131049, 400, Permanent),
            (131050, 400, Permanent),
            (10, 403, Permanent),
            (200, 403, Permanent),
            (299, 403, Permanent),
            (131030, 400, Permanent),
            // Known permanent codes stay permanent even when Meta answers 5xx.
            (131047, 500, Permanent),
            (2388019, 400, Permanent),
            // Unknown codes go by HTTP status.
            (999_999, 400, Permanent),
            (
                999_999,
                503,
                Retry {
                    min_delay_secs: 2,
                    max_attempts: DEFAULT_ATTEMPTS,
                },
            ),
            (
                999_999,
                429,
                Retry {
                    min_delay_secs: 2,
                    max_attempts: DEFAULT_ATTEMPTS,
                },
            ),
        ];
        for &(code, status, expected) in cases {
            assert_eq!(
                disposition_for_code(code, status),
                expected,
                "code {code}, HTTP {status}"
            );
        }
        assert!(matches!(disposition_for_code(131057, 400), Retry { .. }));
    }

    #[test]
    fn disposition_of_transport_errors() {
        for e in [
            GraphError::Network("connection refused".into()),
            GraphError::Timeout,
            GraphError::Unexpected {
                http_status: 502,
                body: "<html>Bad gateway</html>".into(),
            },
        ] {
            assert!(
                matches!(e.disposition(), Disposition::Retry { .. }),
                "{e:?} should be retried"
            );
            assert_eq!(e.code(), None);
        }
        let html_404 = GraphError::Unexpected {
            http_status: 404,
            body: "Not found".into(),
        };
        assert_eq!(html_404.disposition(), Disposition::Permanent);
        let not_sent = GraphError::Unexpected {
            http_status: 0,
            body: "invalid base URL".into(),
        };
        assert_eq!(not_sent.disposition(), Disposition::Permanent);
    }

    #[test]
    fn api_error_uses_its_code() {
        let e = GraphError::from_response(
            400,
            br#"{"error":{"message":"(#131047) Re-engagement message","type":"OAuthException","code":131047,"error_data":{"messaging_product":"whatsapp","details":"More than 24 hours"},"fbtrace_id":"Az1"}}"#,
        );
        assert_eq!(e.code(), Some(131047));
        assert_eq!(e.http_status(), Some(400));
        assert_eq!(e.disposition(), Disposition::Permanent);
        assert_eq!(
            e.to_string(),
            "Graph API error 131047: (#131047) Re-engagement message"
        );
        assert!(e.explain_pt_br().contains("24 horas"));
    }

    #[test]
    fn from_response_parses_graph_errors() {
        let e = GraphError::from_response(
            401,
            br#"{"error":{"message":"Error validating access token","type":"OAuthException","code":"190","error_subcode":463,"fbtrace_id":"AazTVYQ"}}"#,
        );
        assert_eq!(
            e,
            GraphError::Api {
                http_status: 401,
                code: 190,
                subcode: Some(463),
                message: "Error validating access token".into(),
                details: None,
                fbtrace_id: Some("AazTVYQ".into()),
                user: None,
            }
        );
        assert_eq!(e.disposition(), Disposition::InvalidToken);
    }

    #[test]
    fn from_response_falls_back_to_unexpected() {
        for body in [
            &b"<html>oops</html>"[..],
            br#"{"error":"nope"}"#,
            br#"{"error":{"message":"no code"}}"#,
            b"",
        ] {
            let e = GraphError::from_response(500, body);
            assert!(
                matches!(
                    e,
                    GraphError::Unexpected {
                        http_status: 500,
                        ..
                    }
                ),
                "{e:?}"
            );
        }
        let huge = vec![b'x'; 10_000];
        let GraphError::Unexpected { body, .. } = GraphError::from_response(502, &huge) else {
            panic!("expected Unexpected");
        };
        assert!(body.chars().count() <= MAX_BODY_IN_ERROR + 1);
    }

    #[test]
    fn every_documented_code_has_its_own_explanation() {
        for &code in DOCUMENTED {
            let text = explain_pt_br(code);
            assert!(
                !text.contains("recusou a mensagem (erro"),
                "code {code} fell back to the generic text"
            );
            assert!(text.ends_with('.'), "code {code}: {text}");
        }
        assert_eq!(
            explain_pt_br(131047),
            "Mais de 24 horas desde a última mensagem do cliente: só é possível enviar um modelo (HSM) aprovado."
        );
    }

    #[test]
    fn unknown_codes_get_a_generic_explanation_with_the_code() {
        assert_eq!(
            explain_pt_br(424242),
            "A API do WhatsApp recusou a mensagem (erro 424242)."
        );
    }
}
