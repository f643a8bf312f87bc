//! Static checks on a compiled template: every variable it names is in the
//! catalogue, every helper is an allowed built-in, `coupon.*` is only used
//! when the campaign has a coupon (or inside `{{#if coupon}}`).
//!
//! Handlebars' strict mode alone is not enough: `{{#if nmae}}` silently takes
//! the else branch, so this walks the whole tree — expressions, block
//! helpers, their `{{else}}` branches, helper parameters, hash values and
//! subexpressions.
//!
//! Scopes: `{{#with customer}}` (or any group) makes `{{name}}` mean
//! `customer.name` inside the block. Inside `{{#each …}}`, and inside
//! `{{#with}}` of anything that is not a group, the context is a list item or
//! unknown value: relative paths there (`this`, `this.x`, block parameters
//! `as |tag|`) are not checked; `@index`, `@first`, `@last` and `@key` are
//! allowed; `@root.…` and `../…` paths are checked against the catalogue as
//! usual. The check-time sample render (strict mode) catches what is left.

use handlebars::template::{HelperTemplate, Parameter, Template, TemplateElement};
use handlebars::{Path, PathSeg};

use super::vars::{GROUPS, HELPERS, LISTS, VARIABLES, suggest, suggest_helper};

/// One problem, at 1-based line and column inside the template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Finding {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// What a walk found.
#[derive(Debug, Default)]
pub(super) struct Walked {
    pub findings: Vec<Finding>,
    /// `{{unsubscribe_url}}` is printed somewhere.
    pub prints_unsubscribe_url: bool,
}

/// Options for one walk.
pub(super) struct WalkOptions<'a> {
    /// "birthday.sms.yaml text", used in messages.
    pub what: &'a str,
    pub has_coupon: bool,
    /// The template is the HTML part of an email (`{{{…}}}` is refused).
    pub html: bool,
}

/// Walk `template` and report every problem found.
pub(super) fn walk(template: &Template, options: &WalkOptions<'_>) -> Walked {
    let mut w = Walker {
        options,
        frames: vec![Frame::Root],
        block_params: Vec::new(),
        coupon_guards: 0,
        coupon_uses: None,
        out: Walked::default(),
    };
    w.template(template, (1, 1));
    // One error per template string for coupon.* without a coupon, at the
    // first use, saying how many there are.
    if let Some((i, n)) = w.coupon_uses
        && n > 1
    {
        w.out.findings[i]
            .message
            .push_str(&format!(" ({n} uses of coupon.* here)"));
    }
    w.out
}

/// The context `this` refers to.
#[derive(Debug, Clone, PartialEq)]
enum Frame {
    Root,
    /// `{{#with customer}}`: relative paths are under this group.
    Group(&'static str),
    /// Inside `{{#each}}` or `{{#with}}` of a non-group: not checked.
    Opaque,
}

struct Walker<'a> {
    options: &'a WalkOptions<'a>,
    frames: Vec<Frame>,
    block_params: Vec<String>,
    /// How many enclosing blocks only run when there is a coupon.
    coupon_guards: usize,
    /// The finding for the first unguarded coupon.* use without a coupon,
    /// and how many such uses there are.
    coupon_uses: Option<(usize, usize)>,
    out: Walked,
}

/// Where a variable is used.
#[derive(Clone, Copy, PartialEq)]
enum Use {
    /// Printed: `{{x}}`.
    Print,
    /// A helper parameter or block condition.
    Param,
}

impl Walker<'_> {
    fn report(&mut self, at: (usize, usize), message: String) {
        self.out.findings.push(Finding {
            line: at.0,
            column: at.1,
            message,
        });
    }

    fn template(&mut self, t: &Template, parent_at: (usize, usize)) {
        for (i, element) in t.elements.iter().enumerate() {
            let at = t.mapping.get(i).map_or(parent_at, |m| (m.0, m.1));
            self.element(element, at);
        }
    }

    fn element(&mut self, element: &TemplateElement, at: (usize, usize)) {
        match element {
            TemplateElement::RawString(_) | TemplateElement::Comment(_) => {}
            TemplateElement::Expression(h) => self.expression(h, at),
            TemplateElement::HtmlExpression(h) => {
                if self.options.html {
                    let raw = name_text(&h.name);
                    self.report(
                        at,
                        format!(
                            "`{{{{{{{raw}}}}}}}` in {} inserts the value without HTML escaping; write `{{{{{raw}}}}}` so that a customer named <b> shows as <b>",
                            self.options.what
                        ),
                    );
                }
                self.expression(h, at);
            }
            TemplateElement::HelperBlock(h) => self.block(h, at),
            TemplateElement::DecoratorExpression(_)
            | TemplateElement::DecoratorBlock(_)
            | TemplateElement::PartialExpression(_)
            | TemplateElement::PartialBlock(_) => {
                self.report(
                    at,
                    format!(
                        "partials and decorators (`{{{{> …}}}}`, `{{{{* …}}}}`) are not supported in {}; write the text out",
                        self.options.what
                    ),
                );
            }
            // `TemplateElement` is non-exhaustive.
            _ => self.report(
                at,
                format!("unsupported Handlebars construct in {}", self.options.what),
            ),
        }
    }

    /// `{{x}}`, `{{helper a b}}`, `{{(helper a)}}`.
    fn expression(&mut self, h: &HelperTemplate, at: (usize, usize)) {
        match &h.name {
            Parameter::Path(path) if h.params.is_empty() && h.hash.is_empty() => {
                self.path(path, Use::Print, at);
            }
            _ => self.call(h, at),
        }
    }

    /// A helper call: its name, parameters and hash values.
    fn call(&mut self, h: &HelperTemplate, at: (usize, usize)) {
        match &h.name {
            Parameter::Name(name) => self.helper_name(name, at),
            Parameter::Path(path) => self.helper_name(&path_raw(path), at),
            other => self.param(other, at),
        }
        for p in &h.params {
            self.param(p, at);
        }
        let mut hash: Vec<_> = h.hash.iter().collect();
        hash.sort_by(|a, b| a.0.cmp(b.0));
        for (_, p) in hash {
            self.param(p, at);
        }
    }

    fn helper_name(&mut self, name: &str, at: (usize, usize)) {
        if HELPERS.contains(&name) {
            return;
        }
        let hint = match suggest_helper(name) {
            Some(s) => format!("did you mean `{s}`? "),
            None => String::new(),
        };
        self.report(
            at,
            format!(
                "unknown helper `{name}` in {}; {hint}Helpers: {}",
                self.options.what,
                HELPERS.join(", ")
            ),
        );
    }

    fn param(&mut self, p: &Parameter, at: (usize, usize)) {
        match p {
            Parameter::Path(path) => self.path(path, Use::Param, at),
            Parameter::Subexpression(sub) => match sub.as_element() {
                TemplateElement::Expression(h) => match &h.name {
                    Parameter::Path(path) if h.params.is_empty() && h.hash.is_empty() => {
                        self.path(path, Use::Param, at);
                    }
                    _ => self.call(h, at),
                },
                other => self.element(other, at),
            },
            // Literals; `Name` only names helpers.
            _ => {}
        }
    }

    /// `{{#helper …}}…{{else}}…{{/helper}}`
    fn block(&mut self, h: &HelperTemplate, at: (usize, usize)) {
        self.call(h, at);
        let name = match &h.name {
            Parameter::Name(n) => n.as_str(),
            _ => "",
        };
        let first = h.params.first();
        let target = first.and_then(|p| match p {
            Parameter::Path(path) => self.resolve(path),
            _ => None,
        });
        let is_coupon = matches!(&target, Some(Resolved::Name(n)) if n == "coupon");
        let frame = match name {
            "each" => Some(Frame::Opaque),
            "with" => Some(match &target {
                Some(Resolved::Name(n)) => match GROUPS.iter().find(|g| **g == n.as_str()) {
                    Some(g) => Frame::Group(g),
                    None => Frame::Opaque,
                },
                _ => Frame::Opaque,
            }),
            _ => None,
        };
        let guards_body = is_coupon && matches!(name, "if" | "with");
        let guards_inverse = is_coupon && name == "unless";
        let params = block_param_names(h);

        if let Some(body) = &h.template {
            if let Some(f) = &frame {
                self.frames.push(f.clone());
            }
            self.block_params.extend(params.iter().cloned());
            self.coupon_guards += usize::from(guards_body);
            self.template(body, at);
            self.coupon_guards -= usize::from(guards_body);
            let keep = self.block_params.len() - params.len();
            self.block_params.truncate(keep);
            if frame.is_some() {
                self.frames.pop();
            }
        }
        if let Some(inverse) = &h.inverse {
            self.coupon_guards += usize::from(guards_inverse);
            self.template(inverse, at);
            self.coupon_guards -= usize::from(guards_inverse);
        }
    }

    /// Which catalogue name a path means here, if it can be known.
    fn resolve(&self, path: &Path) -> Option<Resolved> {
        match path {
            Path::Local((_, name, _)) => Some(Resolved::Local(name.clone())),
            Path::Relative((segs, raw)) => {
                let root = raw.starts_with("@root");
                let ups = segs
                    .iter()
                    .filter(|s| matches!(s, PathSeg::Ruled(_)))
                    .count()
                    - usize::from(root);
                let names: Vec<&str> = segs
                    .iter()
                    .filter_map(|s| match s {
                        PathSeg::Named(n) => Some(n.as_str()),
                        _ => None,
                    })
                    .collect();
                if !root
                    && ups == 0
                    && names
                        .first()
                        .is_some_and(|n| self.block_params.iter().any(|p| p == n))
                {
                    return None;
                }
                let frame = if root {
                    &Frame::Root
                } else {
                    let i = self.frames.len().saturating_sub(1 + ups);
                    &self.frames[i]
                };
                match frame {
                    Frame::Opaque => None,
                    Frame::Root => Some(Resolved::Name(names.join("."))),
                    Frame::Group(g) if names.is_empty() => Some(Resolved::Name((*g).to_owned())),
                    Frame::Group(g) => Some(Resolved::Name(format!("{g}.{}", names.join(".")))),
                }
            }
        }
    }

    fn path(&mut self, path: &Path, how: Use, at: (usize, usize)) {
        let Some(resolved) = self.resolve(path) else {
            return;
        };
        let what = self.options.what;
        let name = match resolved {
            Resolved::Local(local) => {
                let in_each = self.frames.contains(&Frame::Opaque);
                if !matches!(local.as_str(), "index" | "first" | "last" | "key") {
                    self.report(
                        at,
                        format!(
                            "unknown variable `@{local}` in {what}; inside {{{{#each}}}} there are @index, @first, @last and @key"
                        ),
                    );
                } else if !in_each {
                    self.report(
                        at,
                        format!(
                            "`@{local}` in {what} only exists inside {{{{#each}}}}…{{{{/each}}}}"
                        ),
                    );
                }
                return;
            }
            Resolved::Name(name) => name,
        };
        if name.is_empty() {
            if how == Use::Print {
                self.report(
                    at,
                    format!(
                        "`{{{{this}}}}` in {what} is the whole set of variables; print one of them, such as customer.name"
                    ),
                );
            }
            return;
        }
        if GROUPS.contains(&name.as_str()) {
            if how == Use::Print {
                let members: Vec<&str> = VARIABLES
                    .iter()
                    .filter(|v| v.starts_with(&format!("{name}.")))
                    .copied()
                    .collect();
                self.report(
                    at,
                    format!(
                        "`{name}` in {what} is a group of variables, not a value; print one of {}",
                        members.join(", ")
                    ),
                );
            }
            return;
        }
        let known = VARIABLES.contains(&name.as_str())
            || LISTS.iter().any(|l| {
                name.strip_prefix(l)
                    .and_then(|rest| rest.strip_prefix('.'))
                    .is_some_and(|i| !i.is_empty() && i.chars().all(|c| c.is_ascii_digit()))
            });
        if !known {
            let hint = match suggest(&name) {
                Some(s) => format!("did you mean `{s}`? "),
                None => String::new(),
            };
            self.report(
                at,
                format!(
                    "unknown variable `{name}` in {what}; {hint}Valid: {}",
                    VARIABLES.join(", ")
                ),
            );
            return;
        }
        if name.starts_with("coupon.") && !self.options.has_coupon && self.coupon_guards == 0 {
            if let Some((_, n)) = &mut self.coupon_uses {
                *n += 1;
                return;
            }
            self.coupon_uses = Some((self.out.findings.len(), 1));
            self.report(
                at,
                format!(
                    "`{name}` in {what}: the campaign has no coupon, so coupon.* is not set; add a `coupon:` to the campaign, or wrap this part in {{{{#if coupon}}}}…{{{{/if}}}}"
                ),
            );
            return;
        }
        if how == Use::Print && LISTS.contains(&name.as_str()) {
            self.report(
                at,
                format!(
                    "`{name}` in {what} is a list; print its items with {{{{#each {name}}}}}{{{{this}}}}{{{{/each}}}}"
                ),
            );
            return;
        }
        if how == Use::Print && name == "unsubscribe_url" {
            self.out.prints_unsubscribe_url = true;
        }
    }
}

enum Resolved {
    /// A dotted name from the top of the context ("" for the top itself).
    Name(String),
    /// `@index` and friends, without the `@`.
    Local(String),
}

fn block_param_names(h: &HelperTemplate) -> Vec<String> {
    use handlebars::template::BlockParam;
    let name = |p: &Parameter| match p {
        Parameter::Name(n) => Some(n.clone()),
        _ => None,
    };
    match &h.block_param {
        Some(BlockParam::Single(p)) => name(p).into_iter().collect(),
        Some(BlockParam::Pair((a, b))) => name(a).into_iter().chain(name(b)).collect(),
        _ => Vec::new(),
    }
}

fn path_raw(path: &Path) -> String {
    match path {
        Path::Relative((_, raw)) | Path::Local((_, _, raw)) => raw.clone(),
    }
}

fn name_text(p: &Parameter) -> String {
    match p {
        Parameter::Name(n) => n.clone(),
        Parameter::Path(path) => path_raw(path),
        _ => "…".to_owned(),
    }
}
