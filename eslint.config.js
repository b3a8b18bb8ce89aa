import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  {
    ignores: [
      'node_modules/**',
      '.msr/**',
      'load/results/**',
      'coverage/**',
      '.cache/**',
      'protocol/dist/**',
      'dist/**',
      // Checked by the test that installs the built package next to it (one must not type-check).
      'test/fixtures/protocol-consumer/*.ts',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    // k6 scripts run in k6's JavaScript runtime, with its globals.
    files: ['load/k6/**/*.js'],
    languageOptions: {
      globals: {
        __ENV: 'readonly',
        __VU: 'readonly',
        __ITER: 'readonly',
        console: 'readonly',
        setTimeout: 'readonly',
        clearTimeout: 'readonly',
        setInterval: 'readonly',
        clearInterval: 'readonly',
      },
    },
  },
  {
    // The built package's consumer: run by plain node and, bundled, in a browser page.
    files: ['test/fixtures/protocol-consumer/*.mjs'],
    languageOptions: {
      globals: { window: 'readonly', location: 'readonly', fetch: 'readonly', process: 'readonly' },
    },
  },
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    // Rules that read types: a promise nobody awaits or handles is a failure nobody sees.
    files: ['**/*.ts'],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
    },
  },
);
