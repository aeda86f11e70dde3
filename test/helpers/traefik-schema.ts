import { readFileSync } from 'node:fs';
import { Ajv } from 'ajv';

/**
 * Traefik v3's dynamic-configuration JSON schema (SchemaStore's, vendored unchanged in test/fixtures/traefik; see
 * NOTICE.md there), compiled once with ajv. `strict: false`: the schema uses keywords ajv's strict mode flags
 * (e.g. `default` beside `$ref`), which are annotations, not constraints.
 */
const schema = JSON.parse(
  readFileSync(new URL('../fixtures/traefik/traefik-v3-file-provider.schema.json', import.meta.url), 'utf8'),
) as object;
const validate = new Ajv({ strict: false, allErrors: true }).compile(schema);

/** Schema violations of `doc`, one line each (`<instancePath> <message>`); empty when it is valid. */
export function traefikSchemaErrors(doc: unknown): string[] {
  if (validate(doc)) return [];
  return (validate.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message ?? ''} ${JSON.stringify(e.params)}`);
}
