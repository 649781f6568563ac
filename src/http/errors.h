/*
 * errors.h — the JSON error bodies Fusion answers with.
 *
 * Default shape (OpenAI's, which most clients understand):
 *   {"error":{"message":"...","type":"...","code":"..."}}
 * Later client formats (Anthropic, Gemini) add their own shapes here.
 */
#ifndef FUSION_HTTP_ERRORS_H
#define FUSION_HTTP_ERRORS_H

/* Serialised error body; malloc'd, owned by the caller. code may be NULL. */
char *http_error_body(const char *message, const char *type, const char *code);

/* The error type clients expect for an HTTP status. */
const char *http_error_type_for(int status);

#endif
