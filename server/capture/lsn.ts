/** PostgreSQL's text form of a WAL position ('16/B374D848') as a number, and back. */
export function lsnValue(text: string): bigint {
  const [high, low] = text.split('/');
  if (high === undefined || low === undefined || !/^[0-9A-Fa-f]+$/.test(high + low)) {
    throw new Error(`not an LSN: ${text}`);
  }
  return (BigInt(`0x${high}`) << 32n) | BigInt(`0x${low}`);
}

export function lsnText(value: bigint): string {
  return `${(value >> 32n).toString(16).toUpperCase()}/${(value & 0xffff_ffffn).toString(16).toUpperCase()}`;
}
