/**
 * Service errors are worded for the command line (`--url must be https://`), since the CLI and
 * the admin API share one service layer. An API caller sends JSON fields, so the API names
 * them instead (the console's forms too, whose fields carry the same names): each `--option` becomes its body or query field (camelCase, or as mapped
 * here). Text in backticks is a command to run and keeps its options as they are.
 */
const FIELD_OF_OPTION: Readonly<Record<string, string>> = {
  // The API takes the PEM itself rather than a file to read it from.
  'okta-private-key-file': 'oktaPrivateKey',
  'no-verify': 'verify: false',
  'dry-run': 'dryRun',
};

const OPTION = /(^|[\s(,;:"'[])--([a-z][a-z0-9]*(?:-[a-z0-9]+)*)/g;

/** The message with CLI options named as the admin API's fields. */
export function apiWording(message: string): string {
  return message
    .split(/(`[^`]*`)/)
    .map((part) => (part.startsWith('`') ? part : part.replace(OPTION, (_match, before: string, option: string) => `${before}${fieldOf(option)}`)))
    .join('');
}

function fieldOf(option: string): string {
  return FIELD_OF_OPTION[option] ?? option.replace(/-([a-z0-9])/g, (_m, c: string) => c.toUpperCase());
}
