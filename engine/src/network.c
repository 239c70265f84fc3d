/*
 * network.c: the MATPOWER version 2 case reader and the network queries.
 *
 * A case file is a MATLAB function. We do not evaluate MATLAB: a small
 * lexer walks the file statement by statement, reads the fields we need
 * (mpc.version, mpc.baseMVA, mpc.bus, mpc.gen, mpc.branch), skips every
 * other mpc.<field> assignment whole (matrices, cell arrays, strings), and
 * recognises, by their normalised text, the few unit-conversion statements
 * that distribution cases carry after their matrices (case33bw.m, case69.m,
 * case141.m). Any other statement is an error rather than silently ignored:
 * a statement we do not understand might change the units.
 *
 * Key paths in errors number matrix rows from 1, as MATPOWER does
 * ("branch[12]" is mpc.branch(12, :), "branch 12" to the user).
 */
#include "engine/network.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Column indices (0-based) of the MATPOWER matrices. */
enum { BUS_I = 0, BUS_TYPE, PD, QD, GS, BS, BUS_AREA, VM, VA, BASE_KV, BUS_MIN_COLUMNS = 13 };
enum { GEN_BUS = 0, PG, QG, QMAX, QMIN, VG, MBASE, GEN_STATUS, PMAX, PMIN, GEN_MIN_COLUMNS = 10 };
enum {
    F_BUS = 0,
    T_BUS,
    BR_R,
    BR_X,
    BR_B,
    RATE_A,
    RATE_B,
    RATE_C,
    TAP,
    SHIFT,
    BR_STATUS,
    BRANCH_MIN_COLUMNS = 11
};

typedef struct matrix {
    bool present;
    int line, column; /* of the '[' */
    size_t rows, width;
    double *values; /* rows * width, row-major */
    int *row_line;  /* line of each row, for error messages */
    size_t cap_values, cap_rows;
} matrix;

typedef struct lexer {
    const char *text;
    size_t length, pos;
    int line, column;
    const char *file;
    anm_error_detail *err;
} lexer;

typedef struct parse_state {
    lexer lx;
    char name[128];
    bool have_version, have_base_mva;
    double base_mva;
    matrix bus, gen, branch;
    /* variables of the conversion statements */
    bool have_vbase, have_sbase, have_pf;
    double vbase_v, sbase_va, power_factor;
    char conversions[256];
} parse_state;

/* ---------------------------------------------------------------- lexer */

static int peek_at(const lexer *lx, size_t ahead)
{
    if (lx->pos + ahead >= lx->length)
        return -1;
    return (unsigned char)lx->text[lx->pos + ahead];
}

static int peek(const lexer *lx)
{
    return peek_at(lx, 0);
}

static void advance(lexer *lx)
{
    if (lx->pos >= lx->length)
        return;
    if (lx->text[lx->pos] == '\n') {
        lx->line++;
        lx->column = 1;
    } else {
        lx->column++;
    }
    lx->pos++;
}

static int syntax_error(lexer *lx, int line, int column, const char *message)
{
    anm_error_detail_set(lx->err, lx->file, line, column, NULL, "%s", message);
    return ANM_EPARSE;
}

static void skip_to_end_of_line(lexer *lx)
{
    while (peek(lx) != -1 && peek(lx) != '\n')
        advance(lx);
}

static bool at_continuation(const lexer *lx)
{
    return peek(lx) == '.' && peek_at(lx, 1) == '.' && peek_at(lx, 2) == '.';
}

/* "..." continues the statement: skip the rest of the line and the newline */
static void skip_continuation(lexer *lx)
{
    skip_to_end_of_line(lx);
    advance(lx);
}

static void skip_blanks(lexer *lx)
{
    for (;;) {
        int c = peek(lx);
        if (c == ' ' || c == '\t' || c == '\r')
            advance(lx);
        else if (at_continuation(lx))
            skip_continuation(lx);
        else
            return;
    }
}

static bool is_ident_start(int c)
{
    return c != -1 && (isalpha(c) || c == '_');
}

static bool is_ident_char(int c)
{
    return c != -1 && (isalnum(c) || c == '_');
}

/* Reads an identifier with dots (mpc.baseMVA) into buf; returns its length. */
static size_t read_word(lexer *lx, char *buf, size_t size)
{
    size_t n = 0;
    while (is_ident_char(peek(lx)) || (peek(lx) == '.' && is_ident_start(peek_at(lx, 1)))) {
        if (n + 1 < size)
            buf[n] = (char)peek(lx);
        n++;
        advance(lx);
    }
    buf[n < size ? n : size - 1] = '\0';
    return n;
}

/*
 * Reads one number token (digits, '.', exponent, a leading sign, Inf).
 * The token must end at a separator. NaN is refused.
 */
static int read_number(lexer *lx, double *out)
{
    int line = lx->line, column = lx->column;
    char buf[64];
    size_t n = 0;
    for (;;) {
        int c = peek(lx);
        bool sign_ok = n == 0 || buf[n - 1] == 'e' || buf[n - 1] == 'E';
        if (c == -1 || !(isalnum(c) || c == '.' || ((c == '+' || c == '-') && sign_ok)))
            break;
        if (n + 1 >= sizeof buf)
            return syntax_error(lx, line, column, "number too long");
        buf[n++] = (char)c;
        advance(lx);
    }
    buf[n] = '\0';
    if (n == 0)
        return syntax_error(lx, line, column, "expected a number");
    const char *digits = buf + (buf[0] == '+' || buf[0] == '-');
    bool is_inf = strcmp(digits, "Inf") == 0 || strcmp(digits, "inf") == 0;
    if (!is_inf && !(isdigit((unsigned char)digits[0]) || digits[0] == '.'))
        goto bad;
    char *end = NULL;
    errno = 0;
    double value = strtod(buf, &end);
    if (end != buf + n || errno == ERANGE || isnan(value))
        goto bad;
    *out = value;
    return ANM_OK;
bad:
    anm_error_detail_set(lx->err, lx->file, line, column, NULL, "malformed number '%s'", buf);
    return ANM_EPARSE;
}

/* ---------------------------------------------------------------- matrices */

static void matrix_free(matrix *m)
{
    free(m->values);
    free(m->row_line);
    memset(m, 0, sizeof *m);
}

/*
 * Parses a matrix after its '['. Rows end at ';' or a newline; elements are
 * separated by blanks or commas; '%' starts a comment and '...' continues a
 * row on the next line. Every row must have the same number of columns.
 */
static int parse_matrix(lexer *lx, const char *field, matrix *m)
{
    int rc = ANM_OK;
    size_t used = 0, in_row = 0;
    int row_line = lx->line, row_column = lx->column;
    m->present = true;
    for (;;) {
        int c = peek(lx);
        if (c == -1) {
            anm_error_detail_set(lx->err, lx->file, m->line, m->column, NULL,
                                 "unterminated matrix mpc.%s (no closing ']')", field);
            return ANM_EPARSE;
        }
        if (c == ' ' || c == '\t' || c == '\r' || c == ',') {
            advance(lx);
            continue;
        }
        if (c == '%') {
            skip_to_end_of_line(lx);
            continue;
        }
        if (at_continuation(lx)) {
            skip_continuation(lx);
            continue;
        }
        if (c == '\n' || c == ';' || c == ']') {
            if (in_row > 0) {
                if (m->rows == 0) {
                    m->width = in_row;
                } else if (in_row != m->width) {
                    anm_error_detail_set(lx->err, lx->file, row_line, row_column, NULL,
                                         "row %zu of mpc.%s has %zu columns, the rows above "
                                         "have %zu",
                                         m->rows + 1, field, in_row, m->width);
                    return ANM_EPARSE;
                }
                if (m->rows == m->cap_rows) {
                    size_t cap = m->cap_rows ? m->cap_rows * 2 : 64;
                    int *grown = realloc(m->row_line, cap * sizeof *grown);
                    if (grown == NULL)
                        return ANM_ENOMEM;
                    m->row_line = grown;
                    m->cap_rows = cap;
                }
                m->row_line[m->rows++] = row_line;
                in_row = 0;
            }
            advance(lx);
            if (c == ']')
                return ANM_OK;
            continue;
        }
        if (in_row == 0) {
            row_line = lx->line;
            row_column = lx->column;
        }
        double value = 0;
        rc = read_number(lx, &value);
        if (rc != ANM_OK)
            return rc;
        c = peek(lx);
        if (!(c == -1 || c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == ',' || c == ';' ||
              c == ']' || c == '%')) {
            char message[64];
            int n = snprintf(message, sizeof message, "unexpected character '%c' in matrix",
                             isprint(c) ? c : '?');
            if (n < 0)
                message[0] = '\0';
            return syntax_error(lx, lx->line, lx->column, message);
        }
        if (used == m->cap_values) {
            size_t cap = m->cap_values ? m->cap_values * 2 : 1024;
            double *grown = realloc(m->values, cap * sizeof *grown);
            if (grown == NULL)
                return ANM_ENOMEM;
            m->values = grown;
            m->cap_values = cap;
        }
        m->values[used++] = value;
        in_row++;
    }
}

/* Skips the value of an mpc field we do not read, up to the end of its statement. */
static int skip_value(lexer *lx, int start_line, int start_column)
{
    int depth = 0;
    int previous = '=';
    for (;;) {
        int c = peek(lx);
        if (c == -1) {
            if (depth > 0)
                return syntax_error(lx, start_line, start_column,
                                    "unterminated bracket in statement");
            return ANM_OK;
        }
        if (c == '%') {
            skip_to_end_of_line(lx);
            continue;
        }
        if (at_continuation(lx)) {
            skip_continuation(lx);
            continue;
        }
        if (c == '\'' && !(isalnum(previous) || previous == ')' || previous == ']' ||
                           previous == '}' || previous == '\'' || previous == '_')) {
            int line = lx->line, column = lx->column;
            advance(lx);
            for (;;) {
                int s = peek(lx);
                if (s == -1 || s == '\n')
                    return syntax_error(lx, line, column, "unterminated string");
                advance(lx);
                if (s == '\'') {
                    if (peek(lx) == '\'') {
                        advance(lx);
                        continue;
                    }
                    break;
                }
            }
            previous = 'a';
            continue;
        }
        if (c == '[' || c == '{' || c == '(')
            depth++;
        else if (c == ']' || c == '}' || c == ')') {
            if (depth == 0)
                return syntax_error(lx, lx->line, lx->column, "unbalanced closing bracket");
            depth--;
        } else if (depth == 0 && (c == ';' || c == '\n' || c == ',')) {
            advance(lx);
            return ANM_OK;
        }
        if (c != ' ' && c != '\t')
            previous = c;
        advance(lx);
    }
}

/* After a value: blanks, then ';', ',', a newline, a comment or the end. */
static int expect_statement_end(lexer *lx)
{
    skip_blanks(lx);
    int c = peek(lx);
    if (c == ';' || c == ',' || c == '\n') {
        advance(lx);
        return ANM_OK;
    }
    if (c == -1 || c == '%')
        return ANM_OK;
    return syntax_error(lx, lx->line, lx->column, "expected ';' or a new line after the value");
}

/* ------------------------------------------------------- other statements */

static void append_conversion(parse_state *ps, const char *text)
{
    size_t used = strlen(ps->conversions);
    int n = snprintf(ps->conversions + used, sizeof ps->conversions - used, "%s%s",
                     used > 0 ? "; " : "", text);
    (void)n; /* a truncated report is still a useful report */
}

static bool has_suffix(const char *s, const char *suffix)
{
    size_t ls = strlen(s), lf = strlen(suffix);
    return ls >= lf && strcmp(s + ls - lf, suffix) == 0;
}

static int need_matrix(parse_state *ps, matrix *m, const char *field, size_t min_columns, int line,
                       int column)
{
    if (!m->present) {
        anm_error_detail_set(ps->lx.err, ps->lx.file, line, column, NULL,
                             "statement uses mpc.%s before it is assigned", field);
        return ANM_EPARSE;
    }
    if (m->rows > 0 && m->width < min_columns) {
        anm_error_detail_set(ps->lx.err, ps->lx.file, line, column, NULL,
                             "statement uses a column mpc.%s does not have", field);
        return ANM_EPARSE;
    }
    return ANM_OK;
}

/*
 * Applies a statement that is not an mpc field assignment, given its text
 * with blanks, commas and continuations removed. Only the conversions known
 * from MATPOWER's distribution cases are accepted.
 */
static int apply_statement(parse_state *ps, const char *s, int line, int column)
{
    lexer *lx = &ps->lx;
    int rc = ANM_OK;
    if (strcmp(s, "define_constants") == 0 || strcmp(s, "end") == 0)
        return ANM_OK;
    if (s[0] == '[' && (has_suffix(s, "]=idx_bus") || has_suffix(s, "]=idx_brch") ||
                        has_suffix(s, "]=idx_gen") || has_suffix(s, "]=idx_cost")))
        return ANM_OK;
    if (strcmp(s, "Vbase=mpc.bus(1BASE_KV)*1e3") == 0) {
        rc = need_matrix(ps, &ps->bus, "bus", BUS_MIN_COLUMNS, line, column);
        if (rc != ANM_OK)
            return rc;
        if (ps->bus.rows == 0)
            return syntax_error(lx, line, column,
                                "statement uses mpc.bus(1, BASE_KV) but "
                                "mpc.bus is empty");
        ps->vbase_v = ps->bus.values[BASE_KV] * 1e3;
        ps->have_vbase = true;
        return ANM_OK;
    }
    if (strcmp(s, "Sbase=mpc.baseMVA*1e6") == 0) {
        if (!ps->have_base_mva)
            return syntax_error(lx, line, column,
                                "statement uses mpc.baseMVA before it is assigned");
        ps->sbase_va = ps->base_mva * 1e6;
        ps->have_sbase = true;
        return ANM_OK;
    }
    if (strcmp(s, "mpc.branch(:[BR_RBR_X])=mpc.branch(:[BR_RBR_X])/(Vbase^2/Sbase)") == 0) {
        rc = need_matrix(ps, &ps->branch, "branch", BRANCH_MIN_COLUMNS, line, column);
        if (rc != ANM_OK)
            return rc;
        if (!ps->have_vbase || !ps->have_sbase)
            return syntax_error(lx, line, column,
                                "statement uses Vbase or Sbase before it "
                                "is set");
        double zbase_ohm = ps->vbase_v * ps->vbase_v / ps->sbase_va;
        if (!(zbase_ohm > 0) || !isfinite(zbase_ohm))
            return syntax_error(lx, line, column,
                                "base impedance Vbase^2/Sbase is not "
                                "positive");
        for (size_t r = 0; r < ps->branch.rows; r++) {
            ps->branch.values[r * ps->branch.width + BR_R] /= zbase_ohm;
            ps->branch.values[r * ps->branch.width + BR_X] /= zbase_ohm;
        }
        char text[128];
        int n = snprintf(text, sizeof text, "branch r,x ohm->p.u. (Vbase %g kV, Sbase %g MVA)",
                         ps->vbase_v / 1e3, ps->sbase_va / 1e6);
        append_conversion(ps, n < 0 ? "branch r,x ohm->p.u." : text);
        return ANM_OK;
    }
    if (strcmp(s, "mpc.bus(:[PDQD])=mpc.bus(:[PDQD])/1e3") == 0) {
        rc = need_matrix(ps, &ps->bus, "bus", BUS_MIN_COLUMNS, line, column);
        if (rc != ANM_OK)
            return rc;
        for (size_t r = 0; r < ps->bus.rows; r++) {
            ps->bus.values[r * ps->bus.width + PD] /= 1e3;
            ps->bus.values[r * ps->bus.width + QD] /= 1e3;
        }
        append_conversion(ps, "bus Pd,Qd kW->MW");
        return ANM_OK;
    }
    if (strncmp(s, "pf=", 3) == 0) {
        char *end = NULL;
        errno = 0;
        double value = strtod(s + 3, &end);
        if (end == s + 3 || *end != '\0' || errno == ERANGE || !(value > 0 && value <= 1))
            return syntax_error(lx, line, column, "pf must be a number in (0, 1]");
        ps->power_factor = value;
        ps->have_pf = true;
        return ANM_OK;
    }
    if (strcmp(s, "mpc.bus(:QD)=mpc.bus(:PD)*sin(acos(pf))") == 0) {
        rc = need_matrix(ps, &ps->bus, "bus", BUS_MIN_COLUMNS, line, column);
        if (rc != ANM_OK)
            return rc;
        if (!ps->have_pf)
            return syntax_error(lx, line, column, "statement uses pf before it is set");
        double factor = sin(acos(ps->power_factor));
        for (size_t r = 0; r < ps->bus.rows; r++)
            ps->bus.values[r * ps->bus.width + QD] =
                ps->bus.values[r * ps->bus.width + PD] * factor;
        char text[96];
        int n = snprintf(text, sizeof text, "bus Qd = Pd*sin(acos(%g))", ps->power_factor);
        append_conversion(ps, n < 0 ? "bus Qd from power factor" : text);
        return ANM_OK;
    }
    if (strcmp(s, "mpc.bus(:PD)=mpc.bus(:PD)*pf") == 0) {
        rc = need_matrix(ps, &ps->bus, "bus", BUS_MIN_COLUMNS, line, column);
        if (rc != ANM_OK)
            return rc;
        if (!ps->have_pf)
            return syntax_error(lx, line, column, "statement uses pf before it is set");
        for (size_t r = 0; r < ps->bus.rows; r++)
            ps->bus.values[r * ps->bus.width + PD] *= ps->power_factor;
        char text[96];
        int n =
            snprintf(text, sizeof text, "bus Pd = Pd*%g (kVA at power factor)", ps->power_factor);
        append_conversion(ps, n < 0 ? "bus Pd from power factor" : text);
        return ANM_OK;
    }
    char shown[64];
    size_t n = strlen(s);
    int w = snprintf(shown, sizeof shown, "%.40s%s", s, n > 40 ? "..." : "");
    if (w < 0)
        shown[0] = '\0';
    anm_error_detail_set(lx->err, lx->file, line, column, NULL, "unsupported statement '%s'",
                         shown);
    return ANM_EPARSE;
}

/*
 * Collects a statement from the current position to its end (';' or a
 * newline outside brackets), dropping blanks, commas, comments and
 * continuations, and applies it.
 */
static int parse_other_statement(parse_state *ps)
{
    lexer *lx = &ps->lx;
    int line = lx->line, column = lx->column;
    char text[512];
    size_t n = 0;
    int depth = 0;
    for (;;) {
        int c = peek(lx);
        if (c == -1)
            break;
        if (c == '%') {
            skip_to_end_of_line(lx);
            continue;
        }
        if (at_continuation(lx)) {
            skip_continuation(lx);
            continue;
        }
        if (depth == 0 && (c == ';' || c == '\n')) {
            advance(lx);
            break;
        }
        if (c == '[' || c == '(' || c == '{')
            depth++;
        else if ((c == ']' || c == ')' || c == '}') && depth > 0)
            depth--;
        if (!(c == ' ' || c == '\t' || c == '\r' || c == ',' || (c == '\n' && depth > 0))) {
            if (n + 1 >= sizeof text)
                return syntax_error(lx, line, column, "statement too long");
            text[n++] = (char)c;
        }
        advance(lx);
    }
    text[n] = '\0';
    if (depth > 0)
        return syntax_error(lx, line, column, "unterminated bracket in statement");
    return apply_statement(ps, text, line, column);
}

/* -------------------------------------------------------- mpc assignments */

static int parse_function_line(parse_state *ps)
{
    lexer *lx = &ps->lx;
    /* "function mpc = case33bw": the name is the last word of the line */
    char word[128] = "";
    while (peek(lx) != -1 && peek(lx) != '\n' && peek(lx) != '%') {
        if (is_ident_start(peek(lx))) {
            char candidate[128];
            read_word(lx, candidate, sizeof candidate);
            memcpy(word, candidate, sizeof word);
        } else {
            advance(lx);
        }
    }
    if (word[0] == '\0' || strcmp(word, "mpc") == 0)
        return syntax_error(lx, lx->line, lx->column, "expected 'function mpc = NAME'");
    memcpy(ps->name, word, sizeof ps->name);
    return ANM_OK;
}

static int parse_field_assignment(parse_state *ps, const char *field, int line, int column)
{
    lexer *lx = &ps->lx;
    int rc = ANM_OK;
    skip_blanks(lx);
    if (peek(lx) != '=' || peek_at(lx, 1) == '=')
        return syntax_error(lx, lx->line, lx->column, "expected '=' after mpc field name");
    advance(lx);
    skip_blanks(lx);
    matrix *m = NULL;
    if (strcmp(field, "bus") == 0)
        m = &ps->bus;
    else if (strcmp(field, "gen") == 0)
        m = &ps->gen;
    else if (strcmp(field, "branch") == 0)
        m = &ps->branch;
    if (m != NULL) {
        if (m->present) {
            anm_error_detail_set(lx->err, lx->file, line, column, NULL, "mpc.%s is assigned twice",
                                 field);
            return ANM_EPARSE;
        }
        if (peek(lx) != '[')
            return syntax_error(lx, lx->line, lx->column, "expected '[' to start a matrix");
        m->line = lx->line;
        m->column = lx->column;
        advance(lx);
        rc = parse_matrix(lx, field, m);
        if (rc != ANM_OK)
            return rc;
        return expect_statement_end(lx);
    }
    if (strcmp(field, "baseMVA") == 0) {
        rc = read_number(lx, &ps->base_mva);
        if (rc != ANM_OK)
            return rc;
        ps->have_base_mva = true;
        return expect_statement_end(lx);
    }
    if (strcmp(field, "version") == 0) {
        int vline = lx->line, vcolumn = lx->column;
        if (peek(lx) != '\'')
            return syntax_error(lx, vline, vcolumn, "expected a quoted version such as '2'");
        advance(lx);
        char version[16];
        size_t n = 0;
        while (peek(lx) != -1 && peek(lx) != '\'' && peek(lx) != '\n') {
            if (n + 1 < sizeof version)
                version[n++] = (char)peek(lx);
            advance(lx);
        }
        version[n] = '\0';
        if (peek(lx) != '\'')
            return syntax_error(lx, vline, vcolumn, "unterminated string");
        advance(lx);
        if (strcmp(version, "2") != 0) {
            anm_error_detail_set(lx->err, lx->file, vline, vcolumn, NULL,
                                 "unsupported case format version '%s' (only '2' is read)",
                                 version);
            return ANM_EPARSE;
        }
        ps->have_version = true;
        return expect_statement_end(lx);
    }
    return skip_value(lx, line, column);
}

static int parse_text(parse_state *ps)
{
    lexer *lx = &ps->lx;
    int rc = ANM_OK;
    for (;;) {
        int c = peek(lx);
        if (c == -1)
            return ANM_OK;
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == ';' || c == ',') {
            advance(lx);
            continue;
        }
        if (c == '%') {
            skip_to_end_of_line(lx);
            continue;
        }
        int line = lx->line, column = lx->column;
        if (is_ident_start(c)) {
            size_t start = lx->pos;
            int start_line = lx->line, start_column = lx->column;
            char word[128];
            read_word(lx, word, sizeof word);
            if (strcmp(word, "function") == 0) {
                rc = parse_function_line(ps);
                if (rc != ANM_OK)
                    return rc;
                continue;
            }
            skip_blanks(lx);
            if (strncmp(word, "mpc.", 4) == 0 && strchr(word + 4, '.') == NULL && peek(lx) == '=' &&
                peek_at(lx, 1) != '=') {
                rc = parse_field_assignment(ps, word + 4, line, column);
                if (rc != ANM_OK)
                    return rc;
                continue;
            }
            /* not a field assignment: rewind and read it as a statement */
            lx->pos = start;
            lx->line = start_line;
            lx->column = start_column;
        }
        rc = parse_other_statement(ps);
        if (rc != ANM_OK)
            return rc;
    }
}

/* ------------------------------------------------- from matrices to structs */

static int config_error(parse_state *ps, int line, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int config_error(parse_state *ps, int line, const char *path, const char *fmt, ...)
{
    if (ps->lx.err != NULL) {
        char message[sizeof ps->lx.err->message];
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(message, sizeof message, fmt, ap);
        va_end(ap);
        if (n < 0)
            message[0] = '\0';
        anm_error_detail_set(ps->lx.err, ps->lx.file, line, 0, path, "%s", message);
    }
    return ANM_ECONFIG;
}

/* A matrix entry that must be an integer (a bus number, a type, a status). */
static int integer_entry(parse_state *ps, const matrix *m, const char *field, size_t row,
                         size_t col, const char *column_name, int *out)
{
    double v = m->values[row * m->width + col];
    if (!(v == floor(v)) || v < (double)INT32_MIN || v > (double)INT32_MAX) {
        char path[96];
        int n = snprintf(path, sizeof path, "%s[%zu].%s", field, row + 1, column_name);
        if (n < 0)
            path[0] = '\0';
        return config_error(ps, m->row_line[row], path, "must be an integer, not %g", v);
    }
    *out = (int)v;
    return ANM_OK;
}

static int check_present(parse_state *ps, const matrix *m, const char *field, size_t min_columns)
{
    if (!m->present)
        return config_error(ps, 0, field, "missing (mpc.%s is required)", field);
    if (m->rows > 0 && m->width < min_columns)
        return config_error(ps, m->line, field, "rows have %zu columns, at least %zu are needed",
                            m->width, min_columns);
    return ANM_OK;
}

typedef struct bus_key {
    int id;
    int index;
} bus_key;

static int compare_bus_key(const void *a, const void *b)
{
    const bus_key *x = a, *y = b;
    if (x->id != y->id)
        return x->id < y->id ? -1 : 1;
    return x->index < y->index ? -1 : (x->index > y->index);
}

static int build_buses(parse_state *ps, anm_case *c)
{
    const matrix *m = &ps->bus;
    int rc = ANM_OK;
    bus_key *keys = NULL;
    c->n_bus = m->rows;
    if (m->rows == 0)
        return config_error(ps, m->line, "bus", "the case has no buses");
    if (m->rows > (size_t)INT32_MAX)
        return config_error(ps, m->line, "bus", "too many buses");
    c->bus = calloc(m->rows, sizeof *c->bus);
    c->bus_by_id = calloc(m->rows, sizeof *c->bus_by_id);
    keys = calloc(m->rows, sizeof *keys);
    if (c->bus == NULL || c->bus_by_id == NULL || keys == NULL) {
        rc = ANM_ENOMEM;
        goto free_keys;
    }
    c->ref_bus_index = -1;
    for (size_t r = 0; r < m->rows; r++) {
        const double *row = m->values + r * m->width;
        anm_bus *b = &c->bus[r];
        char path[64];
        if ((rc = integer_entry(ps, m, "bus", r, BUS_I, "id", &b->id)) != ANM_OK ||
            (rc = integer_entry(ps, m, "bus", r, BUS_TYPE, "type", &b->type)) != ANM_OK ||
            (rc = integer_entry(ps, m, "bus", r, BUS_AREA, "area", &b->area)) != ANM_OK)
            goto free_keys;
        if (b->id <= 0) {
            int n = snprintf(path, sizeof path, "bus[%zu].id", r + 1);
            rc = config_error(ps, m->row_line[r], n < 0 ? "bus" : path,
                              "must be a positive integer, not %d", b->id);
            goto free_keys;
        }
        if (b->type < ANM_BUS_PQ || b->type > ANM_BUS_ISOLATED) {
            int n = snprintf(path, sizeof path, "bus[%zu].type", r + 1);
            rc = config_error(ps, m->row_line[r], n < 0 ? "bus" : path,
                              "must be 1 (PQ), 2 (PV), 3 (reference) or 4 (isolated), not %d",
                              b->type);
            goto free_keys;
        }
        b->pd_mw = row[PD];
        b->qd_mvar = row[QD];
        b->gs_mw = row[GS];
        b->bs_mvar = row[BS];
        b->vm_pu = row[VM];
        b->va_deg = row[VA];
        b->base_kv = row[BASE_KV];
        if (b->type == ANM_BUS_REF && c->ref_bus_index < 0)
            c->ref_bus_index = (int)r;
        keys[r].id = b->id;
        keys[r].index = (int)r;
    }
    qsort(keys, m->rows, sizeof *keys, compare_bus_key);
    for (size_t i = 0; i < m->rows; i++) {
        if (i > 0 && keys[i].id == keys[i - 1].id) {
            char path[64];
            size_t row = (size_t)keys[i].index;
            int n = snprintf(path, sizeof path, "bus[%zu].id", row + 1);
            rc = config_error(ps, m->row_line[row], n < 0 ? "bus" : path,
                              "duplicate bus id %d (also bus[%d])", keys[i].id,
                              keys[i - 1].index + 1);
            goto free_keys;
        }
        c->bus_by_id[i] = keys[i].index;
    }
    if (c->ref_bus_index < 0)
        rc = config_error(ps, m->line, "bus", "no reference bus (a bus of type 3)");
free_keys:
    free(keys);
    return rc;
}

static int check_bus_ref(parse_state *ps, const anm_case *c, const matrix *m, const char *field,
                         size_t row, size_t col, const char *column_name, int *out)
{
    int rc = integer_entry(ps, m, field, row, col, column_name, out);
    if (rc != ANM_OK)
        return rc;
    if (anm_case_bus_index(c, *out) < 0) {
        char path[96];
        int n = snprintf(path, sizeof path, "%s[%zu].%s", field, row + 1, column_name);
        return config_error(ps, m->row_line[row], n < 0 ? field : path, "unknown bus %d", *out);
    }
    return ANM_OK;
}

static int build_gens(parse_state *ps, anm_case *c)
{
    const matrix *m = &ps->gen;
    int rc = ANM_OK;
    c->n_gen = m->rows;
    if (m->rows == 0)
        return ANM_OK;
    c->gen = calloc(m->rows, sizeof *c->gen);
    if (c->gen == NULL)
        return ANM_ENOMEM;
    for (size_t r = 0; r < m->rows; r++) {
        const double *row = m->values + r * m->width;
        anm_gen *g = &c->gen[r];
        if ((rc = check_bus_ref(ps, c, m, "gen", r, GEN_BUS, "bus", &g->bus)) != ANM_OK ||
            (rc = integer_entry(ps, m, "gen", r, GEN_STATUS, "status", &g->status)) != ANM_OK)
            return rc;
        g->pg_mw = row[PG];
        g->qg_mvar = row[QG];
        g->pmax_mw = row[PMAX];
        g->pmin_mw = row[PMIN];
    }
    return ANM_OK;
}

static int build_branches(parse_state *ps, anm_case *c)
{
    const matrix *m = &ps->branch;
    int rc = ANM_OK;
    c->n_branch = m->rows;
    if (m->rows == 0)
        return ANM_OK;
    if (m->rows > (size_t)INT32_MAX)
        return config_error(ps, m->line, "branch", "too many branches");
    c->branch = calloc(m->rows, sizeof *c->branch);
    if (c->branch == NULL)
        return ANM_ENOMEM;
    for (size_t r = 0; r < m->rows; r++) {
        const double *row = m->values + r * m->width;
        anm_branch *b = &c->branch[r];
        if ((rc = check_bus_ref(ps, c, m, "branch", r, F_BUS, "from_bus", &b->from_bus)) !=
                ANM_OK ||
            (rc = check_bus_ref(ps, c, m, "branch", r, T_BUS, "to_bus", &b->to_bus)) != ANM_OK ||
            (rc = integer_entry(ps, m, "branch", r, BR_STATUS, "status", &b->status)) != ANM_OK)
            return rc;
        b->r_pu = row[BR_R];
        b->x_pu = row[BR_X];
        b->b_pu = row[BR_B];
        b->rate_a_mva = row[RATE_A];
        b->rate_b_mva = row[RATE_B];
        b->rate_c_mva = row[RATE_C];
        b->tap = row[TAP];
        b->shift_deg = row[SHIFT];
    }
    return ANM_OK;
}

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

static char *duplicate_string(const char *s)
{
    size_t n = strlen(s);
    char *copy = malloc(n + 1);
    if (copy != NULL)
        memcpy(copy, s, n + 1);
    return copy;
}

int anm_case_parse(const char *text, size_t length, const char *name, anm_case **out,
                   anm_error_detail *err)
{
    int rc = ANM_OK;
    anm_case *c = NULL;
    parse_state *ps = NULL;
    if (out == NULL || (text == NULL && length > 0))
        return ANM_EINVAL;
    *out = NULL;
    anm_error_detail_clear(err);
    ps = calloc(1, sizeof *ps);
    c = calloc(1, sizeof *c);
    if (ps == NULL || c == NULL) {
        rc = ANM_ENOMEM;
        goto fail;
    }
    ps->lx.text = text;
    ps->lx.length = length;
    ps->lx.line = 1;
    ps->lx.column = 1;
    ps->lx.file = name != NULL ? name : "";
    ps->lx.err = err;

    rc = parse_text(ps);
    if (rc != ANM_OK)
        goto fail;
    if (!ps->have_version) {
        rc = config_error(ps, 0, "version",
                          "missing (mpc.version = '2' is required; only MATPOWER case format "
                          "version 2 is read)");
        goto fail;
    }
    if (!ps->have_base_mva || !(ps->base_mva > 0) || !isfinite(ps->base_mva)) {
        rc = config_error(ps, 0, "baseMVA",
                          ps->have_base_mva ? "must be a positive number" : "missing");
        goto fail;
    }
    if ((rc = check_present(ps, &ps->bus, "bus", BUS_MIN_COLUMNS)) != ANM_OK ||
        (rc = check_present(ps, &ps->gen, "gen", GEN_MIN_COLUMNS)) != ANM_OK ||
        (rc = check_present(ps, &ps->branch, "branch", BRANCH_MIN_COLUMNS)) != ANM_OK)
        goto fail;
    c->base_mva = ps->base_mva;
    if ((rc = build_buses(ps, c)) != ANM_OK || (rc = build_gens(ps, c)) != ANM_OK ||
        (rc = build_branches(ps, c)) != ANM_OK)
        goto fail;
    if (ps->name[0] == '\0') {
        /* no function line: name the case after its file, without ".m" */
        const char *base = base_name(ps->lx.file);
        size_t n = strlen(base);
        if (n >= 2 && strcmp(base + n - 2, ".m") == 0)
            n -= 2;
        if (n >= sizeof ps->name)
            n = sizeof ps->name - 1;
        memcpy(ps->name, base, n);
        ps->name[n] = '\0';
    }
    c->name = duplicate_string(ps->name);
    c->path = duplicate_string(ps->lx.file);
    if (c->name == NULL || c->path == NULL) {
        rc = ANM_ENOMEM;
        goto fail;
    }
    memcpy(c->conversions, ps->conversions, sizeof c->conversions);
    *out = c;
    c = NULL;
fail:
    if (ps != NULL) {
        matrix_free(&ps->bus);
        matrix_free(&ps->gen);
        matrix_free(&ps->branch);
        free(ps);
    }
    anm_case_destroy(&c);
    return rc;
}

int anm_case_load(const char *path, anm_case **out, anm_error_detail *err)
{
    int rc = ANM_OK;
    char *text = NULL;
    size_t size = 0, cap = 0;
    if (path == NULL || out == NULL)
        return ANM_EINVAL;
    *out = NULL;
    anm_error_detail_clear(err);
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        anm_error_detail_set(err, path, 0, 0, NULL, "could not open: %s", strerror(errno));
        return ANM_EIO;
    }
    for (;;) {
        if (size == cap) {
            cap = cap ? cap * 2 : 65536;
            char *grown = realloc(text, cap);
            if (grown == NULL) {
                rc = ANM_ENOMEM;
                goto close_file;
            }
            text = grown;
        }
        size_t n = fread(text + size, 1, cap - size, f);
        size += n;
        if (n == 0) {
            if (ferror(f)) {
                anm_error_detail_set(err, path, 0, 0, NULL, "could not read: %s", strerror(errno));
                rc = ANM_EIO;
                goto close_file;
            }
            break;
        }
    }
    rc = anm_case_parse(text, size, path, out, err);
close_file:
    fclose(f);
    free(text);
    return rc;
}

void anm_case_destroy(anm_case **c)
{
    if (c == NULL || *c == NULL)
        return;
    free((*c)->name);
    free((*c)->path);
    free((*c)->bus);
    free((*c)->gen);
    free((*c)->branch);
    free((*c)->bus_by_id);
    free(*c);
    *c = NULL;
}

int anm_case_bus_index(const anm_case *c, int bus_id)
{
    if (c == NULL || c->bus_by_id == NULL)
        return -1;
    size_t lo = 0, hi = c->n_bus;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int id = c->bus[c->bus_by_id[mid]].id;
        if (id == bus_id)
            return c->bus_by_id[mid];
        if (id < bus_id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

double anm_branch_tap(const anm_branch *branch)
{
    return branch->tap == 0.0 ? 1.0 : branch->tap;
}

size_t anm_case_in_service_branches(const anm_case *c)
{
    size_t n = 0;
    for (size_t i = 0; i < c->n_branch; i++)
        n += c->branch[i].status > 0;
    return n;
}

size_t anm_case_in_service_gens(const anm_case *c)
{
    size_t n = 0;
    for (size_t i = 0; i < c->n_gen; i++)
        n += c->gen[i].status > 0;
    return n;
}

/* ------------------------------------------------------------------ bridges */

/*
 * Tarjan's bridge finding, iterative (an explicit stack, so a 2,000-bus
 * radial chain cannot overflow the C stack). Edges are identified by branch
 * index, so of two parallel branches neither is a bridge: the walk skips
 * only the branch it arrived by, not every branch back to the parent.
 */
int anm_case_find_bridges(const anm_case *c, unsigned char *bridges)
{
    int rc = ANM_OK;
    size_t nb = c->n_bus, ne = c->n_branch;
    size_t *adjacency_start = NULL, *adjacency = NULL, *next_edge = NULL;
    int *discovery = NULL, *low = NULL, *parent_edge = NULL;
    size_t *stack = NULL;
    int *endpoint_from = NULL, *endpoint_to = NULL;

    memset(bridges, 0, ne);
    adjacency_start = calloc(nb + 1, sizeof *adjacency_start);
    adjacency = calloc(2 * ne + 1, sizeof *adjacency);
    next_edge = calloc(nb + 1, sizeof *next_edge);
    discovery = calloc(nb + 1, sizeof *discovery);
    low = calloc(nb + 1, sizeof *low);
    parent_edge = calloc(nb + 1, sizeof *parent_edge);
    stack = calloc(nb + 1, sizeof *stack);
    endpoint_from = calloc(ne + 1, sizeof *endpoint_from);
    endpoint_to = calloc(ne + 1, sizeof *endpoint_to);
    if (!adjacency_start || !adjacency || !next_edge || !discovery || !low || !parent_edge ||
        !stack || !endpoint_from || !endpoint_to) {
        rc = ANM_ENOMEM;
        goto free_all;
    }
    /* adjacency lists (CSR) of in-service branches, self-loops left out */
    for (size_t e = 0; e < ne; e++) {
        endpoint_from[e] = anm_case_bus_index(c, c->branch[e].from_bus);
        endpoint_to[e] = anm_case_bus_index(c, c->branch[e].to_bus);
        if (c->branch[e].status <= 0 || endpoint_from[e] < 0 || endpoint_to[e] < 0 ||
            endpoint_from[e] == endpoint_to[e])
            continue;
        adjacency_start[endpoint_from[e] + 1]++;
        adjacency_start[endpoint_to[e] + 1]++;
    }
    for (size_t v = 0; v < nb; v++)
        adjacency_start[v + 1] += adjacency_start[v];
    for (size_t v = 0; v < nb; v++)
        next_edge[v] = adjacency_start[v];
    for (size_t e = 0; e < ne; e++) {
        if (c->branch[e].status <= 0 || endpoint_from[e] < 0 || endpoint_to[e] < 0 ||
            endpoint_from[e] == endpoint_to[e])
            continue;
        adjacency[next_edge[endpoint_from[e]]++] = e;
        adjacency[next_edge[endpoint_to[e]]++] = e;
    }
    for (size_t v = 0; v < nb; v++)
        next_edge[v] = adjacency_start[v];

    int time = 0;
    for (size_t root = 0; root < nb; root++) {
        if (discovery[root] != 0)
            continue;
        size_t top = 0;
        stack[top++] = root;
        discovery[root] = low[root] = ++time;
        parent_edge[root] = -1;
        while (top > 0) {
            size_t v = stack[top - 1];
            if (next_edge[v] < adjacency_start[v + 1]) {
                size_t e = adjacency[next_edge[v]++];
                if ((int)e == parent_edge[v])
                    continue;
                size_t w = (size_t)(endpoint_from[e] == (int)v ? endpoint_to[e] : endpoint_from[e]);
                if (discovery[w] == 0) {
                    discovery[w] = low[w] = ++time;
                    parent_edge[w] = (int)e;
                    stack[top++] = w;
                } else if (discovery[w] < low[v]) {
                    low[v] = discovery[w];
                }
            } else {
                top--;
                if (top > 0) {
                    size_t u = stack[top - 1];
                    if (low[v] < low[u])
                        low[u] = low[v];
                    if (low[v] > discovery[u])
                        bridges[parent_edge[v]] = 1;
                }
            }
        }
    }
free_all:
    free(adjacency_start);
    free(adjacency);
    free(next_edge);
    free(discovery);
    free(low);
    free(parent_edge);
    free(stack);
    free(endpoint_from);
    free(endpoint_to);
    return rc;
}
