/** Test responses are read field by field, so the body stays loosely typed here. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

export async function getJson(port: number, path: string): Promise<{ status: number; body: Json }> {
  const response = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: response.status, body: (await response.json()) as Json };
}
