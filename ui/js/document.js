// Brazilian taxpayer documents for the "Código" field: CPF (11 digits), numeric CNPJ (14 digits)
// and the alphanumeric CNPJ (IN RFB 2.229/2024: 12 characters A-Z/0-9, then 2 numeric check
// digits; each character is worth its ASCII code minus 48, so '0'..'9' are 0..9 and 'A'..'Z' are
// 17..42, with the numeric CNPJ's weights). Pure functions, no DOM: the form and tests use them.

const CNPJ_WEIGHTS_1 = [5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2];
const CNPJ_WEIGHTS_2 = [6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2];

/** What a person typed, without punctuation and spaces, upper-cased. */
export function normalizeDocument(input) {
  return String(input || "")
    .replace(/[\s.\-/]/g, "")
    .toUpperCase();
}

function checkDigit(values, weights) {
  const sum = weights.reduce((acc, w, i) => acc + w * values[i], 0);
  const r = sum % 11;
  return r < 2 ? 0 : 11 - r;
}

function allSame(s) {
  return /^(.)\1*$/.test(s);
}

export function isValidCpf(value) {
  const d = normalizeDocument(value);
  if (!/^\d{11}$/.test(d) || allSame(d)) return false;
  const n = [...d].map(Number);
  const first = checkDigit(n, [10, 9, 8, 7, 6, 5, 4, 3, 2]);
  const second = checkDigit(n, [11, 10, 9, 8, 7, 6, 5, 4, 3, 2]);
  return n[9] === first && n[10] === second;
}

/** Numeric and alphanumeric CNPJ. */
export function isValidCnpj(value) {
  const d = normalizeDocument(value);
  if (!/^[A-Z0-9]{12}\d{2}$/.test(d) || allSame(d)) return false;
  const n = [...d].map((c) => c.charCodeAt(0) - 48);
  const first = checkDigit(n, CNPJ_WEIGHTS_1);
  const second = checkDigit(n, CNPJ_WEIGHTS_2);
  return n[12] === first && n[13] === second;
}

export function formatCpf(d) {
  return `${d.slice(0, 3)}.${d.slice(3, 6)}.${d.slice(6, 9)}-${d.slice(9, 11)}`;
}

export function formatCnpj(d) {
  return `${d.slice(0, 2)}.${d.slice(2, 5)}.${d.slice(5, 8)}/${d.slice(8, 12)}-${d.slice(12, 14)}`;
}

/**
 * Checks a "Código" as it is being typed. Returns one of
 * - `{state: "empty"}`;
 * - `{state: "partial"}`: could still become a valid document (shown as a hint, an error only
 *   when the field is left like that);
 * - `{state: "valid", kind: "cpf"|"cnpj", value (normalized), formatted}`;
 * - `{state: "invalid", reason}` with reason `chars` (characters no document has), `length` (too
 *   long), `check_digits` (last two of a CNPJ must be digits), `repeated` (all the same), `cpf`
 *   or `cnpj` (wrong check digits); an invalid CPF has `mayBeCnpj` (typing may go on to a CNPJ).
 */
export function checkDocument(input) {
  const raw = String(input || "");
  const d = normalizeDocument(raw);
  if (!d) return { state: "empty" };
  if (!/^[A-Z0-9]+$/.test(d)) return { state: "invalid", reason: "chars" };
  if (d.length > 14) return { state: "invalid", reason: "length" };
  const numeric = /^\d+$/.test(d);
  if (d.length > 12 && !/^\d+$/.test(d.slice(12))) return { state: "invalid", reason: "check_digits" };
  if (numeric && d.length === 11) {
    if (allSame(d)) return { state: "invalid", reason: "repeated" };
    if (isValidCpf(d)) return { state: "valid", kind: "cpf", value: d, formatted: formatCpf(d) };
    // Eleven digits may also be the start of a numeric CNPJ.
    return { state: "invalid", reason: "cpf", mayBeCnpj: true };
  }
  if (d.length === 14) {
    if (allSame(d)) return { state: "invalid", reason: "repeated" };
    if (isValidCnpj(d)) return { state: "valid", kind: "cnpj", value: d, formatted: formatCnpj(d) };
    return { state: "invalid", reason: "cnpj" };
  }
  return { state: "partial", alphanumeric: !numeric };
}
