/** A problem with what a person asked for (arguments, ids, config). Shown as one sentence. */
export class UserError extends Error {
  override name = 'UserError';
}

export class NotFoundError extends UserError {
  override name = 'NotFoundError';
}

/** What was asked for clashes with what exists (a taken slug): 409 in the API. */
export class ConflictError extends UserError {
  override name = 'ConflictError';
}
