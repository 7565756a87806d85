// The one logger shape every layer accepts: pino's, narrowed to what they call. Layers below the
// daemon take it as an option and never import pino themselves.
export interface Logger {
  debug?(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}
