// Labels in French and English. French is the default when the browser asks for it.
const STRINGS = {
  en: {
    skip: "Skip to content",
    language: "Language",
    logout: "Sign out",
    "nav.documents": "Documents",
    "nav.ask": "Ask",
    "nav.releases": "Releases",
    "login.title": "Sign in",
    "login.key": "API key",
    "login.help": "The key is kept in this browser tab only, until you sign out or close it.",
    "login.submit": "Sign in",
    "login.bad": "This key was refused: {detail}",
    "login.expired": "Your key was refused; sign in again.",
    "docs.title": "Documents",
    "docs.upload": "Upload",
    "docs.drop": "Drop files here, or",
    "docs.choose": "choose files",
    "docs.collection": "Collection",
    "docs.tags": "Tags (comma-separated)",
    "docs.all": "All",
    "docs.tag": "Tag",
    "docs.status": "Status",
    "docs.search": "Search by title",
    "docs.empty": "No document matches.",
    "docs.more": "Load more",
    "docs.col.title": "Title",
    "docs.col.collection": "Collection",
    "docs.col.status": "Status",
    "docs.col.version": "Version",
    "docs.col.tags": "Tags",
    "docs.col.updated": "Updated",
    "docs.uploads": "Uploads",
    "docs.clear": "Clear finished",
    "status.queued": "queued",
    "status.uploading": "uploading",
    "status.parsing": "parsing",
    "status.indexing": "indexing",
    "status.processing": "processing",
    "status.removing": "removing",
    "status.ready": "ready",
    "status.failed": "failed",
    "status.deleting": "deleting",
    "status.duplicate": "already present",
    "doc.back": "All documents",
    "doc.metadata": "Metadata",
    "doc.versions": "Versions",
    "doc.id": "Id",
    "doc.created": "Created",
    "doc.chunks": "Chunks",
    "doc.entities": "Entities",
    "doc.file": "File",
    "doc.size": "Size",
    "doc.type": "Type",
    "doc.download": "Download",
    "doc.newVersion": "Upload a new version",
    "doc.delete": "Delete",
    "doc.confirmDelete": "Delete “{title}” and every version, chunk and index entry?",
    "doc.cancel": "Cancel",
    "doc.deleted": "“{title}” was deleted.",
    "doc.none": "none",
    "ask.title": "Ask the documents",
    "ask.collection": "Collection",
    "ask.allCollections": "All collections",
    "ask.question": "Question",
    "ask.send": "Ask",
    "ask.hint": "Enter sends, Shift+Enter adds a line.",
    "ask.notFound": "Not found in the documents",
    "ask.sources": "Sources",
    "ask.page": "p. {page}",
    "ask.passage": "Source passage",
    "ask.close": "Close",
    "ask.openDoc": "Open the document",
    "ask.thinking": "Searching…",
    "ask.error": "The question failed: {detail}",
    "rel.title": "Releases",
    "rel.unavailable": "Releases are unavailable on this server (no evaluation service).",
    "rel.none": "No releases yet.",
    "rel.production": "Production",
    "rel.candidates": "Candidates",
    "rel.noProduction": "No release is in production.",
    "rel.created": "Created",
    "rel.runs": "Latest evaluations",
    "rel.noRuns": "Not evaluated yet.",
    "rel.suite": "Suite",
    "rel.finished": "Finished",
    "rel.report": "Show report",
    "rel.hideReport": "Hide report",
    "rel.promote": "Promote",
    "rel.promoteSuite": "Gate suite",
    "rel.anySuite": "default",
    "rel.promoted": "Promoted to production.",
    "rel.refused": "Promotion refused by the gate.",
    "rel.forbidden": "Not allowed: {detail}",
    "rel.reasons": "Reasons",
    "error.generic": "Error: {detail}",
  },
  fr: {
    skip: "Aller au contenu",
    language: "Langue",
    logout: "Se déconnecter",
    "nav.documents": "Documents",
    "nav.ask": "Questions",
    "nav.releases": "Versions du pipeline",
    "login.title": "Connexion",
    "login.key": "Clé d’API",
    "login.help": "La clé est gardée dans cet onglet seulement, jusqu’à la déconnexion ou sa fermeture.",
    "login.submit": "Se connecter",
    "login.bad": "Clé refusée : {detail}",
    "login.expired": "Votre clé a été refusée ; reconnectez-vous.",
    "docs.title": "Documents",
    "docs.upload": "Déposer",
    "docs.drop": "Glissez des fichiers ici, ou",
    "docs.choose": "choisissez des fichiers",
    "docs.collection": "Collection",
    "docs.tags": "Étiquettes (séparées par des virgules)",
    "docs.all": "Toutes",
    "docs.tag": "Étiquette",
    "docs.status": "État",
    "docs.search": "Rechercher par titre",
    "docs.empty": "Aucun document ne correspond.",
    "docs.more": "Afficher plus",
    "docs.col.title": "Titre",
    "docs.col.collection": "Collection",
    "docs.col.status": "État",
    "docs.col.version": "Version",
    "docs.col.tags": "Étiquettes",
    "docs.col.updated": "Modifié",
    "docs.uploads": "Dépôts",
    "docs.clear": "Effacer les terminés",
    "status.queued": "en attente",
    "status.uploading": "envoi",
    "status.parsing": "analyse",
    "status.indexing": "indexation",
    "status.processing": "en traitement",
    "status.removing": "suppression",
    "status.ready": "prêt",
    "status.failed": "échec",
    "status.deleting": "suppression",
    "status.duplicate": "déjà présent",
    "doc.back": "Tous les documents",
    "doc.metadata": "Métadonnées",
    "doc.versions": "Versions",
    "doc.id": "Identifiant",
    "doc.created": "Créé",
    "doc.chunks": "Passages",
    "doc.entities": "Entités",
    "doc.file": "Fichier",
    "doc.size": "Taille",
    "doc.type": "Type",
    "doc.download": "Télécharger",
    "doc.newVersion": "Déposer une nouvelle version",
    "doc.delete": "Supprimer",
    "doc.confirmDelete": "Supprimer « {title} » et toutes ses versions, passages et index ?",
    "doc.cancel": "Annuler",
    "doc.deleted": "« {title} » a été supprimé.",
    "doc.none": "aucune",
    "ask.title": "Interroger les documents",
    "ask.collection": "Collection",
    "ask.allCollections": "Toutes les collections",
    "ask.question": "Question",
    "ask.send": "Demander",
    "ask.hint": "Entrée envoie, Maj+Entrée ajoute une ligne.",
    "ask.notFound": "Introuvable dans les documents",
    "ask.sources": "Sources",
    "ask.page": "p. {page}",
    "ask.passage": "Passage source",
    "ask.close": "Fermer",
    "ask.openDoc": "Ouvrir le document",
    "ask.thinking": "Recherche…",
    "ask.error": "La question a échoué : {detail}",
    "rel.title": "Versions du pipeline",
    "rel.unavailable": "Les versions ne sont pas disponibles sur ce serveur (pas de service d’évaluation).",
    "rel.none": "Aucune version pour l’instant.",
    "rel.production": "Production",
    "rel.candidates": "Candidates",
    "rel.noProduction": "Aucune version en production.",
    "rel.created": "Créée",
    "rel.runs": "Dernières évaluations",
    "rel.noRuns": "Pas encore évaluée.",
    "rel.suite": "Jeu d’évaluation",
    "rel.finished": "Terminée",
    "rel.report": "Voir le rapport",
    "rel.hideReport": "Masquer le rapport",
    "rel.promote": "Promouvoir",
    "rel.promoteSuite": "Jeu du contrôle",
    "rel.anySuite": "par défaut",
    "rel.promoted": "Promue en production.",
    "rel.refused": "Promotion refusée par le contrôle.",
    "rel.forbidden": "Non autorisé : {detail}",
    "rel.reasons": "Raisons",
    "error.generic": "Erreur : {detail}",
  },
};

const LANG_KEY = "gedrag.lang";

/** "fr" when the browser's first preferred language is French, else "en"; a choice made in
 * the console wins. */
export function initialLang() {
  const chosen = localStorage.getItem(LANG_KEY);
  if (chosen && chosen in STRINGS) return chosen;
  const preferred = (navigator.languages && navigator.languages[0]) || navigator.language || "en";
  return preferred.toLowerCase().startsWith("fr") ? "fr" : "en";
}

let lang = "en";

export function setLang(value) {
  lang = value in STRINGS ? value : "en";
  localStorage.setItem(LANG_KEY, lang);
  document.documentElement.lang = lang;
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
}

export function getLang() {
  return lang;
}

export function t(key, vars = {}) {
  const text = STRINGS[lang][key] ?? STRINGS.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(vars[name] ?? ""));
}

export function formatDate(iso) {
  if (!iso) return "";
  return new Date(iso).toLocaleString(lang === "fr" ? "fr-FR" : "en-GB", {
    dateStyle: "medium",
    timeStyle: "short",
  });
}

export function formatBytes(n) {
  const units = ["B", "KB", "MB", "GB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i += 1;
  }
  return `${n.toFixed(i ? 1 : 0)} ${lang === "fr" ? units[i].replace("B", "o") : units[i]}`;
}
