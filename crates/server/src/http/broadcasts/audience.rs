//! A broadcast's audience as rows: a CSV (header row; `,`, `;` or tab; UTF-8 or Windows-1252
//! as spreadsheets export it) or the contacts of the channel; the mapping of its columns to the
//! phone, the name and the template's variables (suggested from the header's names); every row
//! checked: the phone normalized to E.164 (`domain::phone::normalize_br`), duplicates after
//! normalization, the variables against the template. Nothing here touches the database.

use std::collections::{BTreeMap, HashMap};

use domain::template::{MediaValue, TemplateDefinition, parameters};
use store::broadcasts::{AudienceContact, NewRecipient, Rejection};

use crate::workers::broadcasts::compose::{RecipientVariables, compose};

/// Target key ("phone", "name", "header.<var>", "body.<var>", "button.<index>") → the column (or
/// contact field) that fills it.
pub type Mapping = BTreeMap<String, String>;

/// The largest audience accepted at once.
pub const MAX_ROWS: usize = 200_000;
/// A phone, a name and a template's variables fit many times over; a wider file is a mistake
/// (or an attack on memory: every cell becomes a string).
pub const MAX_COLUMNS: usize = 100;
pub const MAX_CELL_CHARS: usize = 1_024;

/// A parsed CSV: its header and its rows with their line numbers (the header is line 1).
#[derive(Debug, Clone, Default)]
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<(i64, Vec<String>)>,
}

/// Reads a CSV export; `Err` with a pt-BR reason.
pub fn parse_csv(bytes: &[u8]) -> Result<Table, String> {
    let text = decode(bytes);
    let text = text.trim_start_matches('\u{feff}');
    let first = text.lines().next().unwrap_or_default();
    let delimiter = [b';', b',', b'\t']
        .into_iter()
        .max_by_key(|d| first.bytes().filter(|b| b == d).count())
        .unwrap_or(b',');
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let columns: Vec<String> = reader
        .headers()
        .map_err(|e| format!("Não foi possível ler o cabeçalho do CSV: {e}"))?
        .iter()
        .map(str::to_owned)
        .collect();
    if columns.iter().all(String::is_empty) {
        return Err("O CSV está vazio: a primeira linha deve ter os nomes das colunas.".into());
    }
    let too_wide = |line: String| {
        format!(
            "A linha {line} do CSV tem mais de {MAX_COLUMNS} colunas; deixe só as que o disparo usa."
        )
    };
    if columns.len() > MAX_COLUMNS {
        return Err(too_wide("1".into()));
    }
    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let record = record.map_err(|e| format!("CSV inválido na linha {}: {e}", i + 2))?;
        if record.len() > MAX_COLUMNS {
            return Err(too_wide((i + 2).to_string()));
        }
        if record.iter().any(|c| c.chars().count() > MAX_CELL_CHARS) {
            return Err(format!(
                "A linha {} do CSV tem uma célula com mais de {MAX_CELL_CHARS} caracteres.",
                i + 2
            ));
        }
        if record.iter().all(str::is_empty) {
            continue;
        }
        if rows.len() >= MAX_ROWS {
            return Err(format!(
                "O CSV tem mais de {MAX_ROWS} linhas; divida-o em mais de um disparo."
            ));
        }
        let line = record.position().map_or(i as i64 + 2, |p| p.line() as i64);
        rows.push((line, record.iter().map(str::to_owned).collect()));
    }
    Ok(Table { columns, rows })
}

/// UTF-8 when it is; otherwise Windows-1252/Latin-1 (what Excel saves as "CSV" in Brazil).
fn decode(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => bytes.iter().map(|&b| char::from(b)).collect(),
    }
}

/// The template's variables as mapping keys, in the order a sender fills them.
pub fn variable_keys(def: &TemplateDefinition) -> Vec<String> {
    let p = parameters(def);
    let mut keys: Vec<String> = p.header.iter().map(|v| format!("header.{v}")).collect();
    keys.extend(p.body.iter().map(|v| format!("body.{v}")));
    keys.extend(p.buttons.iter().map(|(i, _)| format!("button.{i}")));
    keys
}

const PHONE_WORDS: &[&str] = &[
    "telefone", "celular", "phone", "whatsapp", "fone", "numero", "mobile", "wa_id", "tel", "cel",
    "contato",
];
const NAME_WORDS: &[&str] = &["nome", "name", "cliente", "nome completo", "first_name"];

/// A mapping guessed from the columns' names: the phone and name columns by the usual words, a
/// variable by a column of its own name (`1`, `{{1}}`, `var1`, `pedido`), and the variables left
/// in order to the columns left (other than the phone).
pub fn suggest_mapping(columns: &[String], def: &TemplateDefinition) -> Mapping {
    let folded: Vec<String> = columns
        .iter()
        .map(|c| domain::text::fold_for_match(c))
        .collect();
    let mut mapping = Mapping::new();
    let phone = folded
        .iter()
        .position(|c| PHONE_WORDS.iter().any(|w| c == w))
        .or_else(|| {
            folded
                .iter()
                .position(|c| PHONE_WORDS.iter().any(|w| c.contains(w)))
        });
    if let Some(i) = phone {
        mapping.insert("phone".into(), columns[i].clone());
    }
    if let Some(i) = folded
        .iter()
        .position(|c| NAME_WORDS.iter().any(|w| c == w))
    {
        mapping.insert("name".into(), columns[i].clone());
    }
    let mut used: Vec<usize> = phone.into_iter().collect();
    let keys = variable_keys(def);
    let mut unmatched = Vec::new();
    for key in &keys {
        let var = key.split_once('.').map_or(key.as_str(), |(_, v)| v);
        let var = domain::text::fold_for_match(var);
        let wanted = [
            var.clone(),
            format!("{{{{{var}}}}}"),
            format!("var{var}"),
            format!("var {var}"),
            format!("variavel {var}"),
            format!("variavel{var}"),
            domain::text::fold_for_match(key),
        ];
        match folded
            .iter()
            .enumerate()
            .find(|(i, c)| !used.contains(i) && wanted.contains(c))
        {
            Some((i, _)) => {
                used.push(i);
                mapping.insert(key.clone(), columns[i].clone());
            }
            None => unmatched.push(key.clone()),
        }
    }
    let mut rest = (0..columns.len()).filter(|i| !used.contains(i));
    for key in unmatched {
        match rest.next() {
            Some(i) => {
                mapping.insert(key, columns[i].clone());
            }
            None => break,
        }
    }
    mapping
}

/// A mapping for the contacts source: phone and name from the contact, variables named like a
/// contact field.
pub fn suggest_contact_mapping(def: &TemplateDefinition, fields: &[String]) -> Mapping {
    let mut mapping = Mapping::new();
    mapping.insert("phone".into(), "phone".into());
    mapping.insert("name".into(), "name".into());
    for key in variable_keys(def) {
        let var = domain::text::fold_for_match(key.split_once('.').map_or(&key, |(_, v)| v));
        let field = match var.as_str() {
            "1" | "nome" | "name" | "first_name" | "cliente" => Some("name".to_owned()),
            "codigo" | "code" => Some("code".into()),
            "email" | "e-mail" => Some("email".into()),
            other => fields
                .iter()
                .find(|f| domain::text::fold_for_match(f) == other)
                .map(|f| format!("custom.{f}")),
        };
        if let Some(field) = field {
            mapping.insert(key, field);
        }
    }
    mapping
}

/// The columns of the contacts source.
pub fn contact_columns(fields: &[String]) -> Vec<String> {
    let mut columns: Vec<String> = ["phone", "name", "code", "email", "profile_name"]
        .into_iter()
        .map(str::to_owned)
        .collect();
    columns.extend(fields.iter().map(|f| format!("custom.{f}")));
    columns
}

/// One row of whichever source, by column name.
pub trait Row {
    fn line(&self) -> i64;
    fn get(&self, column: &str) -> Option<&str>;
}

pub struct CsvRow<'a> {
    pub line: i64,
    pub cells: &'a [String],
    pub index: &'a HashMap<&'a str, usize>,
}

impl Row for CsvRow<'_> {
    fn line(&self) -> i64 {
        self.line
    }
    fn get(&self, column: &str) -> Option<&str> {
        self.index
            .get(column)
            .and_then(|&i| self.cells.get(i))
            .map(String::as_str)
    }
}

pub struct ContactRow<'a> {
    pub line: i64,
    pub contact: &'a AudienceContact,
}

impl Row for ContactRow<'_> {
    fn line(&self) -> i64 {
        self.line
    }
    fn get(&self, column: &str) -> Option<&str> {
        let c = self.contact;
        match column {
            "phone" => Some(c.wa_id.as_str()),
            "name" => c.name.as_deref().or(c.profile_name.as_deref()),
            "code" => c.code.as_deref(),
            "email" => c.email.as_deref(),
            "profile_name" => c.profile_name.as_deref(),
            other => other
                .strip_prefix("custom.")
                .and_then(|k| c.fields.get(k))
                .map(String::as_str),
        }
    }
}

/// Accepted recipients and rejected rows, in the rows' order.
#[derive(Debug, Default)]
pub struct Checked {
    pub recipients: Vec<NewRecipient>,
    pub rejections: Vec<Rejection>,
    /// wa_id → line of the first row with it.
    seen: HashMap<String, i64>,
}

impl Checked {
    /// Checks one row and keeps it as a recipient or a rejection.
    pub fn add(
        &mut self,
        row: &dyn Row,
        mapping: &Mapping,
        def: &TemplateDefinition,
        header_media: Option<&MediaValue>,
    ) {
        let line = row.line();
        let raw_phone = mapping
            .get("phone")
            .and_then(|c| row.get(c))
            .unwrap_or("")
            .trim();
        let reject = |code: &str, reason: String| Rejection {
            row_number: line,
            phone: (!raw_phone.is_empty()).then(|| raw_phone.to_owned()),
            code: code.to_owned(),
            reason,
        };
        if raw_phone.is_empty() {
            self.rejections
                .push(reject("missing_phone", "Linha sem telefone.".into()));
            return;
        }
        let wa_id = match domain::phone::normalize_br(raw_phone) {
            Ok(n) => n,
            Err(e) => {
                self.rejections.push(reject(e.code(), e.to_string()));
                return;
            }
        };
        if let Some(first) = self.seen.get(&wa_id) {
            self.rejections.push(reject(
                "duplicate",
                format!("Número repetido: já está na linha {first}."),
            ));
            return;
        }
        let variables = variables_of(row, mapping);
        if let Err(reason) = compose(def, header_media, &variables) {
            self.rejections.push(reject("invalid_variables", reason));
            return;
        }
        self.seen.insert(wa_id.clone(), line);
        let name = mapping
            .get("name")
            .and_then(|c| row.get(c))
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_owned);
        self.recipients.push(NewRecipient {
            row_number: line,
            wa_id,
            name,
            variables: serde_json::to_string(&variables).unwrap_or_else(|_| "{}".into()),
        });
    }
}

impl Checked {
    /// Turns the recipients in `out_of_reach` into rejections (a supervisor's CSV naming another
    /// queue's customers), keeping the rows' order.
    pub fn reject_out_of_reach(&mut self, out_of_reach: &std::collections::HashSet<String>) {
        if out_of_reach.is_empty() {
            return;
        }
        let (outside, inside): (Vec<_>, Vec<_>) = std::mem::take(&mut self.recipients)
            .into_iter()
            .partition(|r| out_of_reach.contains(&r.wa_id));
        self.recipients = inside;
        self.rejections
            .extend(outside.into_iter().map(|r| Rejection {
                row_number: r.row_number,
                phone: Some(r.wa_id),
                code: "out_of_reach".into(),
                reason: "Este cliente é atendido por outra fila.".into(),
            }));
        self.rejections.sort_by_key(|r| r.row_number);
    }
}

/// The row's values for the template's variables, by the mapping.
pub fn variables_of(row: &dyn Row, mapping: &Mapping) -> RecipientVariables {
    let mut v = RecipientVariables::default();
    for (key, column) in mapping {
        let Some(value) = row.get(column).map(str::trim) else {
            continue;
        };
        if let Some(var) = key.strip_prefix("header.") {
            v.header.insert(var.to_owned(), value.to_owned());
        } else if let Some(var) = key.strip_prefix("body.") {
            v.body.insert(var.to_owned(), value.to_owned());
        } else if let Some(i) = key
            .strip_prefix("button.")
            .and_then(|i| i.parse::<usize>().ok())
        {
            v.buttons.insert(i, value.to_owned());
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wide_rows_and_long_cells_are_refused() {
        let header: Vec<String> = (0..=MAX_COLUMNS).map(|i| format!("c{i}")).collect();
        let wide = format!("{}\n", header.join(";"));
        assert!(parse_csv(wide.as_bytes()).unwrap_err().contains("colunas"));
        let row = format!(
            "telefone;nome\n5511999990000;{}\n",
            "a".repeat(MAX_CELL_CHARS + 1)
        );
        assert!(parse_csv(row.as_bytes()).unwrap_err().contains("célula"));
        let cells = format!("telefone;nome\n{}\n", "a;".repeat(MAX_COLUMNS + 1));
        assert!(parse_csv(cells.as_bytes()).unwrap_err().contains("colunas"));
    }

    fn def(body: &str) -> TemplateDefinition {
        serde_json::from_value(serde_json::json!({
            "name": "aviso", "language": "pt_BR", "category": "MARKETING",
            "components": [{"type": "BODY", "text": body,
                "example": {"body_text": [["Ana", "123"]]}}]
        }))
        .unwrap()
    }

    #[test]
    fn reads_semicolons_latin1_and_a_bom() {
        let mut bytes = b"\xef\xbb\xbfTelefone;Nome\n11 98765-4321;Ana\n\n".to_vec();
        let t = parse_csv(&bytes).unwrap();
        assert_eq!(t.columns, ["Telefone", "Nome"]);
        assert_eq!(
            t.rows,
            vec![(2, vec!["11 98765-4321".into(), "Ana".into()])]
        );
        bytes = b"fone,nome\n11987654321,Jo\xe3o\n".to_vec();
        let t = parse_csv(&bytes).unwrap();
        assert_eq!(t.rows[0].1[1], "João");
    }

    #[test]
    fn suggests_phone_name_and_positional_variables() {
        let columns: Vec<String> = ["Celular", "Nome", "Pedido"].map(String::from).into();
        let m = suggest_mapping(&columns, &def("Olá {{1}}, seu pedido {{2}} saiu."));
        assert_eq!(m["phone"], "Celular");
        assert_eq!(m["name"], "Nome");
        assert_eq!(m["body.1"], "Nome");
        assert_eq!(m["body.2"], "Pedido");
        let columns: Vec<String> = ["whatsapp", "2", "1"].map(String::from).into();
        let m = suggest_mapping(&columns, &def("Olá {{1}}, seu pedido {{2}} saiu."));
        assert_eq!((m["body.1"].as_str(), m["body.2"].as_str()), ("1", "2"));
    }

    #[test]
    fn rows_are_normalized_checked_and_deduplicated() {
        let d = def("Olá {{1}}, seu pedido {{2}} saiu.");
        let table = parse_csv(
            b"telefone,nome,pedido\n(11) 98765-4321,Ana,1\n5511987654321,Ana de novo,2\n123,Bia,3\n21987654321,,4\n",
        )
        .unwrap();
        let mapping = suggest_mapping(&table.columns, &d);
        let index: HashMap<&str, usize> = table
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| (c.as_str(), i))
            .collect();
        let mut checked = Checked::default();
        for (line, cells) in &table.rows {
            let row = CsvRow {
                line: *line,
                cells,
                index: &index,
            };
            checked.add(&row, &mapping, &d, None);
        }
        assert_eq!(checked.recipients.len(), 1);
        assert_eq!(checked.recipients[0].wa_id, "5511987654321");
        let codes: Vec<(i64, &str)> = checked
            .rejections
            .iter()
            .map(|r| (r.row_number, r.code.as_str()))
            .collect();
        assert_eq!(
            codes,
            vec![
                (3, "duplicate"),
                (4, "phone_too_short"),
                (5, "invalid_variables")
            ]
        );
    }
}
