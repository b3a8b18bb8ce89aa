/**
 * A text with the password of every URL in it masked (`postgres://msr:***@db/msr`), whether or
 * not the URL parses: configuration errors and tool failures echo what they were given.
 */
export function redactSecrets(text: string): string {
  return text.replace(/(\/\/[^:/@\s]*:)[^@\s]*@/g, '$1***@');
}
