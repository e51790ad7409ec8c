// ESLint for the browser page (build-free ES modules served from http_api/web/static/) and its
// unit tests, which run under node's own test runner.

import js from "@eslint/js";
import globals from "globals";

export default [
  {
    ignores: ["node_modules/", ".venv/", "load/results/", "tests/artifacts/"],
  },
  js.configs.recommended,
  {
    files: ["http_api/web/static/**/*.js"],
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: "module",
      globals: globals.browser,
    },
  },
  {
    files: ["tests/web/**/*.js", "eslint.config.js"],
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: "module",
      globals: globals.node,
    },
  },
  {
    files: ["**/*.js"],
    rules: {
      eqeqeq: ["error", "always"],
      "no-var": "error",
      "prefer-const": "error",
      "no-shadow": "error",
      "no-implicit-globals": "error",
      "no-unused-vars": [
        "error",
        { args: "after-used", argsIgnorePattern: "^_", caughtErrors: "all" },
      ],
      "no-use-before-define": ["error", { functions: false, classes: true, variables: true }],
      "object-shorthand": ["error", "always"],
      "no-param-reassign": ["error", { props: false }],
    },
  },
];
