// Translations: Brazilian Portuguese by default, English switchable. The choice is kept in
// localStorage and reflected in <html lang>. Elements built with a `data-i18n` key (and optional
// `data-i18n-args` JSON) are re-translated in place when the language changes, so switching keeps
// what the user was doing.

const STORAGE_KEY = "atende.lang";
export const LANGUAGES = [
  { code: "pt-BR", label: "Português (Brasil)" },
  { code: "en", label: "English" },
];

const DICTIONARIES = {
  "pt-BR": {
    "app.name": "Atende",
    "app.tagline": "Central de atendimento pelo WhatsApp",
    "lang.label": "Idioma",

    "login.title": "Entrar no Atende",
    "login.email": "E-mail",
    "login.password": "Senha",
    "login.submit": "Entrar",
    "login.submitting": "Entrando…",
    "login.error.invalid": "E-mail ou senha incorretos.",
    "login.error.missing": "Informe o e-mail e a senha.",
    "login.error.throttled": "Muitas tentativas sem sucesso. Aguarde 15 minutos e tente de novo.",
    "login.expired": "Sua sessão expirou. Entre novamente.",
    "login.loggedOut": "Você saiu do Atende.",

    "error.network": "Sem conexão com o servidor. Verifique a rede e tente de novo.",
    "error.unexpected": "Erro inesperado ({status}): {message}",
    "error.forbidden": "Seu perfil não permite esta ação.",
    "error.notFound": "Não encontrado.",

    "top.logout": "Sair",
    "role.admin": "Administrador",
    "role.supervisor": "Supervisor",
    "role.agent": "Atendente",

    "nav.conversations": "Conversas",
    "nav.flows": "Fluxos do bot",
    "nav.simulator": "Simulador",

    "conv.title": "Conversas abertas",
    "conv.empty": "Nenhuma conversa aberta no momento.",
    "conv.pick": "Escolha uma conversa à esquerda para ver as mensagens.",
    "conv.protocol": "Protocolo {protocol}",
    "conv.unread": "{n} mensagem(ns) não lida(s)",
    "conv.loadError": "Não foi possível carregar as conversas.",
    "conv.closed": "Conversa encerrada: uma nova mensagem do cliente abre outra, com novo protocolo.",

    "state.bot": "No robô",
    "state.queued": "Na fila",
    "state.assigned": "Em atendimento",
    "state.transferred": "Transferida",
    "state.finalized": "Finalizada",
    "state.survey": "Pesquisa",
    "state.closed": "Encerrada",

    "author.customer": "Cliente",
    "author.bot": "Robô",
    "author.agent": "Atendente",
    "author.you": "Você",
    "author.system": "Sistema",
    "author.integration": "Integração",

    "msg.older": "Carregar mensagens anteriores",
    "msg.empty": "Nenhuma mensagem ainda.",
    "msg.openFile": "Abrir arquivo",
    "msg.failed": "Não enviada: {reason}",
    "day.today": "Hoje",
    "day.yesterday": "Ontem",

    "status.queued": "Na fila de envio",
    "status.sent": "Enviada",
    "status.delivered": "Entregue",
    "status.read": "Lida",
    "status.failed": "Falhou",

    "kind.image": "Imagem",
    "kind.audio": "Áudio",
    "kind.video": "Vídeo",
    "kind.document": "Documento",
    "kind.sticker": "Figurinha",
    "kind.location": "Localização",
    "kind.contacts": "Contato",
    "kind.interactive": "Resposta",
    "kind.reaction": "Reação",
    "kind.template": "Modelo",
    "kind.unsupported": "Mensagem não suportada pelo WhatsApp",
    "kind.other": "Mensagem ({kind})",

    "composer.placeholder": "Digite uma mensagem (Enter envia, Shift+Enter quebra a linha)",
    "composer.send": "Enviar",
    "composer.error": "Não foi possível enviar: {message}",
    "composer.outsideWindow": "Mais de 24 horas desde a última mensagem do cliente: só é possível enviar um modelo aprovado (HSM).",
    "composer.closed": "Esta conversa foi encerrada; uma nova mensagem do cliente abre outra.",

    "flows.title": "Fluxos do bot",
    "flows.empty": "Nenhum fluxo cadastrado.",
    "flows.unavailable": "A API de fluxos ainda não está disponível neste servidor.",
    "flows.adminOnly": "Somente administradores editam os fluxos do bot.",
    "flows.pick": "Escolha um fluxo à esquerda para editar, ou crie um novo.",
    "flows.version": "versão {version}",
    "flows.enabled": "Ativo",
    "flows.disabled": "Inativo",
    "flows.allChannels": "Todos os canais",
    "flows.channel": "Canal {id}",
    "flows.new": "Novo fluxo",
    "flows.newName": "Nome do novo fluxo",
    "flows.create": "Criar",
    "flows.cancel": "Cancelar",
    "flows.editor": "Definição do fluxo (JSON)",
    "flows.format": "Formatar JSON",
    "flows.validate": "Validar",
    "flows.validating": "Validando…",
    "flows.save": "Salvar nova versão",
    "flows.saving": "Salvando…",
    "flows.saved": "Versão {version} salva.",
    "flows.valid": "Fluxo válido.",
    "flows.invalid": "O fluxo tem {n} problema(s) a corrigir:",
    "flows.jsonError": "JSON inválido: {message}",
    "flows.preview": "Prévia: o que o cliente veria",
    "flows.previewEmpty": "O fluxo não envia nenhuma mensagem no início.",
    "flows.handoff": "Transferido para a fila \"{queue}\"",
    "flows.end": "O robô encerra a conversa",
    "flows.waits": "O robô aguarda a resposta do cliente",
    "flows.history": "Histórico de versões",
    "flows.historyEmpty": "Sem versões anteriores.",
    "flows.current": "atual",
    "flows.by": "por usuário {id}",
    "flows.unsaved": "Alterações não salvas",
    "flows.listOpen": "Ver opções",

    "sim.title": "Simulador de WhatsApp",
    "sim.badge": "Simulador",
    "sim.notReal": "Isto não é o WhatsApp real. As mensagens vão para o Atende pelo simulador embutido, do jeito que a Meta as entregaria.",
    "sim.customer": "Você é o cliente",
    "sim.name": "Nome do cliente",
    "sim.number": "Número do cliente (DDI + DDD + número)",
    "sim.numberInvalid": "Informe só dígitos, com DDI e DDD (ex.: 5511987654321).",
    "sim.business": "Atende",
    "sim.businessNumber": "Número da empresa: {number}",
    "sim.placeholder": "Mensagem",
    "sim.attach": "Enviar imagem ou arquivo",
    "sim.send": "Enviar",
    "sim.empty": "Escreva como se fosse o cliente: um \"Oi\" abre a conversa.",
    "sim.sendError": "Não foi possível enviar: {message}",
    "sim.fileTooBig": "Arquivo grande demais para o simulador (máximo 16 MB).",
    "sim.clear": "Limpar a tela",
    "sim.openApp": "Abrir o Atende (atendentes)",
    "sim.disabledTitle": "O simulador não está ativo",
    "sim.disabledBody": "Este servidor não está rodando o simulador de WhatsApp. Inicie o Atende com --demo on (ou deixe o padrão --demo auto, que liga o simulador enquanto nenhum número real do WhatsApp estiver configurado) e recarregue esta página.",
    "sim.retry": "Tentar de novo",
    "sim.reaction": "Reagiu com {emoji}",
    "sim.template": "Modelo \"{name}\"",
  },
  en: {
    "app.name": "Atende",
    "app.tagline": "WhatsApp contact center",
    "lang.label": "Language",

    "login.title": "Sign in to Atende",
    "login.email": "Email",
    "login.password": "Password",
    "login.submit": "Sign in",
    "login.submitting": "Signing in…",
    "login.error.invalid": "Wrong email or password.",
    "login.error.missing": "Enter your email and password.",
    "login.error.throttled": "Too many failed attempts. Wait 15 minutes and try again.",
    "login.expired": "Your session expired. Please sign in again.",
    "login.loggedOut": "You signed out of Atende.",

    "error.network": "Cannot reach the server. Check the network and try again.",
    "error.unexpected": "Unexpected error ({status}): {message}",
    "error.forbidden": "Your role does not allow this.",
    "error.notFound": "Not found.",

    "top.logout": "Sign out",
    "role.admin": "Administrator",
    "role.supervisor": "Supervisor",
    "role.agent": "Agent",

    "nav.conversations": "Conversations",
    "nav.flows": "Bot flows",
    "nav.simulator": "Simulator",

    "conv.title": "Open conversations",
    "conv.empty": "No open conversations right now.",
    "conv.pick": "Pick a conversation on the left to see its messages.",
    "conv.protocol": "Protocol {protocol}",
    "conv.unread": "{n} unread message(s)",
    "conv.loadError": "Could not load the conversations.",
    "conv.closed": "Conversation closed: a new customer message opens another one, with a new protocol.",

    "state.bot": "With the bot",
    "state.queued": "Queued",
    "state.assigned": "Assigned",
    "state.transferred": "Transferred",
    "state.finalized": "Finalized",
    "state.survey": "Survey",
    "state.closed": "Closed",

    "author.customer": "Customer",
    "author.bot": "Bot",
    "author.agent": "Agent",
    "author.you": "You",
    "author.system": "System",
    "author.integration": "Integration",

    "msg.older": "Load earlier messages",
    "msg.empty": "No messages yet.",
    "msg.openFile": "Open file",
    "msg.failed": "Not sent: {reason}",
    "day.today": "Today",
    "day.yesterday": "Yesterday",

    "status.queued": "Waiting to be sent",
    "status.sent": "Sent",
    "status.delivered": "Delivered",
    "status.read": "Read",
    "status.failed": "Failed",

    "kind.image": "Image",
    "kind.audio": "Audio",
    "kind.video": "Video",
    "kind.document": "Document",
    "kind.sticker": "Sticker",
    "kind.location": "Location",
    "kind.contacts": "Contact",
    "kind.interactive": "Reply",
    "kind.reaction": "Reaction",
    "kind.template": "Template",
    "kind.unsupported": "Message not supported by WhatsApp",
    "kind.other": "Message ({kind})",

    "composer.placeholder": "Type a message (Enter sends, Shift+Enter adds a line)",
    "composer.send": "Send",
    "composer.error": "Could not send: {message}",
    "composer.outsideWindow": "More than 24 hours since the customer's last message: only an approved template (HSM) can be sent.",
    "composer.closed": "This conversation is closed; a new customer message opens another one.",

    "flows.title": "Bot flows",
    "flows.empty": "No flows yet.",
    "flows.unavailable": "The flows API is not available on this server yet.",
    "flows.adminOnly": "Only administrators edit bot flows.",
    "flows.pick": "Pick a flow on the left to edit it, or create a new one.",
    "flows.version": "version {version}",
    "flows.enabled": "Enabled",
    "flows.disabled": "Disabled",
    "flows.allChannels": "All channels",
    "flows.channel": "Channel {id}",
    "flows.new": "New flow",
    "flows.newName": "Name of the new flow",
    "flows.create": "Create",
    "flows.cancel": "Cancel",
    "flows.editor": "Flow definition (JSON)",
    "flows.format": "Format JSON",
    "flows.validate": "Validate",
    "flows.validating": "Validating…",
    "flows.save": "Save new version",
    "flows.saving": "Saving…",
    "flows.saved": "Version {version} saved.",
    "flows.valid": "The flow is valid.",
    "flows.invalid": "The flow has {n} problem(s) to fix:",
    "flows.jsonError": "Invalid JSON: {message}",
    "flows.preview": "Preview: what the customer would see",
    "flows.previewEmpty": "The flow sends no message at the start.",
    "flows.handoff": "Handed over to queue \"{queue}\"",
    "flows.end": "The bot closes the conversation",
    "flows.waits": "The bot waits for the customer's answer",
    "flows.history": "Version history",
    "flows.historyEmpty": "No earlier versions.",
    "flows.current": "current",
    "flows.by": "by user {id}",
    "flows.unsaved": "Unsaved changes",
    "flows.listOpen": "See options",

    "sim.title": "WhatsApp simulator",
    "sim.badge": "Simulator",
    "sim.notReal": "This is not the real WhatsApp. Messages reach Atende through the built-in simulator, exactly as Meta would deliver them.",
    "sim.customer": "You are the customer",
    "sim.name": "Customer name",
    "sim.number": "Customer number (country + area code + number)",
    "sim.numberInvalid": "Digits only, with country and area code (e.g. 5511987654321).",
    "sim.business": "Atende",
    "sim.businessNumber": "Business number: {number}",
    "sim.placeholder": "Message",
    "sim.attach": "Send an image or a file",
    "sim.send": "Send",
    "sim.empty": "Write as the customer would: a \"Hi\" opens the conversation.",
    "sim.sendError": "Could not send: {message}",
    "sim.fileTooBig": "File too large for the simulator (16 MB at most).",
    "sim.clear": "Clear the screen",
    "sim.openApp": "Open Atende (agents)",
    "sim.disabledTitle": "The simulator is not running",
    "sim.disabledBody": "This server is not running the WhatsApp simulator. Start Atende with --demo on (or keep the default --demo auto, which runs the simulator while no real WhatsApp number is configured) and reload this page.",
    "sim.retry": "Try again",
    "sim.reaction": "Reacted with {emoji}",
    "sim.template": "Template \"{name}\"",
  },
};

const DEFAULT_LANG = "pt-BR";
let current = initialLanguage();
const listeners = new Set();

function initialLanguage() {
  try {
    const saved = localStorage.getItem(STORAGE_KEY);
    if (saved && DICTIONARIES[saved]) return saved;
  } catch {
    // Storage may be blocked; Portuguese it is.
  }
  return DEFAULT_LANG;
}

/** The translation of `key`, with `{name}` placeholders filled from `args`. */
export function t(key, args) {
  const text = DICTIONARIES[current][key] ?? DICTIONARIES[DEFAULT_LANG][key] ?? key;
  if (!args) return text;
  return text.replace(/\{(\w+)\}/g, (whole, name) => (name in args ? String(args[name]) : whole));
}

export function getLang() {
  return current;
}

/** Whether a translation exists (for optional keys such as states we may not know yet). */
export function has(key) {
  return key in DICTIONARIES[current] || key in DICTIONARIES[DEFAULT_LANG];
}

export function setLang(code) {
  if (!DICTIONARIES[code] || code === current) return;
  current = code;
  try {
    localStorage.setItem(STORAGE_KEY, code);
  } catch {
    // Not remembered, still switched.
  }
  document.documentElement.lang = code;
  applyI18n(document);
  for (const fn of listeners) fn(code);
}

/** Calls `fn(code)` after every language change. */
export function onLangChange(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

/** Re-translates every element below `root` that carries a `data-i18n*` attribute. */
export function applyI18n(root) {
  const args = (el) => (el.dataset.i18nArgs ? JSON.parse(el.dataset.i18nArgs) : undefined);
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n, args(el));
  for (const el of root.querySelectorAll("[data-i18n-placeholder]")) {
    el.placeholder = t(el.dataset.i18nPlaceholder, args(el));
  }
  for (const el of root.querySelectorAll("[data-i18n-title]")) el.title = t(el.dataset.i18nTitle, args(el));
  for (const el of root.querySelectorAll("[data-i18n-aria-label]")) {
    el.setAttribute("aria-label", t(el.dataset.i18nAriaLabel, args(el)));
  }
  if (root === document && document.body?.dataset.i18nDocTitle) {
    document.title = t(document.body.dataset.i18nDocTitle);
  }
}

/** A <select> that switches the language. */
export function languageSelect(id = "lang-select") {
  const select = document.createElement("select");
  select.id = id;
  select.className = "lang-select";
  select.dataset.i18nAriaLabel = "lang.label";
  select.dataset.i18nTitle = "lang.label";
  select.setAttribute("aria-label", t("lang.label"));
  select.title = t("lang.label");
  for (const { code, label } of LANGUAGES) {
    const option = document.createElement("option");
    option.value = code;
    option.textContent = label;
    option.selected = code === current;
    select.append(option);
  }
  select.addEventListener("change", () => setLang(select.value));
  onLangChange((code) => {
    select.value = code;
  });
  return select;
}

document.documentElement.lang = current;
