/**
 * Handlers for stand-in HTTP servers in client tests: answer(status, body)
 * reads the request to its end, then answers with that status and body.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

export type Handler = (req: IncomingMessage, res: ServerResponse) => void;

export function answer(status: number, body = '', headers: Record<string, string> = {}): Handler {
  return (req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(status, { 'content-type': 'text/plain', ...headers });
      res.end(body);
    });
  };
}
