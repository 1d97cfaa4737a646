//! `#[plugin_api::routes]`: routes declared on their handlers, as FastAPI declares them on its
//! functions, each documented by its handler's doc comment.
//!
//! ```text
//! #[plugin_api::routes]
//! impl Customers {
//!     /// One customer.
//!     ///
//!     /// Answers 404 when there is none with this id.
//!     #[get("/customers/{id}", errors(404))]
//!     async fn get(self: Arc<Self>, Path(id): Path<i64>) -> Result<Json<Customer>, Error> { … }
//! }
//! ```
//!
//! adds `Customers::declared_routes(r: &mut Router<Self>)` (another name with
//! `#[routes(view_routes)]`, for a second impl block), which registers each of them:
//! `r.get("/customers/{id}", Self::get).named("get").doc("One customer.", "Answers 404 …")
//! .errors(&[404])`. The route attributes are `get`, `post`, `put`, `patch`, `delete` (API routes)
//! and `page`, `form` (views); after the path: `public`, `require = "items.write"`,
//! `status = 201`, `errors(404, 409)`.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as Tokens};
use quote::quote;
use syn::parse::{ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::{Attribute, Expr, ImplItem, ItemImpl, Lit, LitInt, LitStr, Meta, Token};

/// Registers the impl block's handlers that carry a route attribute; see the crate's docs.
#[proc_macro_attribute]
pub fn routes(args: TokenStream, item: TokenStream) -> TokenStream {
    match expand(args.into(), item.into()) {
        Ok(tokens) => tokens.into(),
        Err(error) => error.to_compile_error().into(),
    }
}

const API: [&str; 5] = ["get", "post", "put", "patch", "delete"];
const VIEWS: [&str; 2] = ["page", "form"];

/// One route attribute, read.
struct Declared {
    kind: String,
    path: LitStr,
    public: bool,
    require: Option<LitStr>,
    status: Option<LitInt>,
    errors: Vec<LitInt>,
}

fn expand(args: Tokens, item: Tokens) -> syn::Result<Tokens> {
    // The registering function's name: `declared_routes`, or the one given
    // (`#[routes(view_routes)]`, for a second impl block).
    let register = if args.is_empty() {
        syn::Ident::new("declared_routes", Span::call_site())
    } else {
        syn::parse2::<syn::Ident>(args).map_err(|e| {
            syn::Error::new(
                e.span(),
                "#[routes] takes at most a name for its registering function: #[routes(view_routes)]",
            )
        })?
    };
    let mut block: ItemImpl = syn::parse2(item)?;
    if let Some((_, path, _)) = &block.trait_ {
        return Err(syn::Error::new_spanned(
            path,
            "#[routes] goes on the module's own impl block (impl MyModule { … }), not on a trait impl",
        ));
    }
    let mut registrations = Vec::new();
    for item in &mut block.items {
        let ImplItem::Fn(function) = item else {
            continue;
        };
        let mut declared = Vec::new();
        let mut kept = Vec::new();
        for attribute in function.attrs.drain(..) {
            let name = attribute
                .path()
                .get_ident()
                .map(ToString::to_string)
                .unwrap_or_default();
            if API.contains(&name.as_str()) || VIEWS.contains(&name.as_str()) {
                declared.push(route_attribute(&name, &attribute)?);
            } else {
                kept.push(attribute);
            }
        }
        function.attrs = kept;
        if declared.is_empty() {
            continue;
        }
        let handler = &function.sig.ident;
        let handler_name = handler.to_string();
        let (summary, description) = doc_comment(&function.attrs);
        for route in declared {
            let method = syn::Ident::new(&route.kind, Span::call_site());
            let path = &route.path;
            let mut call = quote! {
                r.#method(#path, Self::#handler).named(#handler_name).doc(#summary, #description)
            };
            if route.public {
                call = quote! { #call.public() };
            }
            if let Some(permission) = &route.require {
                call = quote! { #call.require(#permission) };
            }
            if let Some(status) = &route.status {
                call = quote! { #call.status(#status) };
            }
            if !route.errors.is_empty() {
                let errors = &route.errors;
                call = quote! { #call.errors(&[#(#errors),*]) };
            }
            registrations.push(quote! { #call; });
        }
    }
    let (generics, type_generics, where_clause) = block.generics.split_for_impl();
    let self_type = &block.self_ty;
    Ok(quote! {
        #block

        impl #generics #self_type #type_generics #where_clause {
            /// The routes declared on this type's handlers (`#[get(…)]` and the like), each
            /// documented by its handler's doc comment: call it from `Module::routes`.
            pub fn #register(r: &mut ::plugin_api::Router<Self>) {
                #(#registrations)*
            }
        }
    })
}

/// `#[get("/path", public, require = "x.y", status = 201, errors(404, 409))]`.
fn route_attribute(kind: &str, attribute: &Attribute) -> syn::Result<Declared> {
    let Meta::List(list) = &attribute.meta else {
        return Err(syn::Error::new_spanned(
            attribute,
            format!("#[{kind}] needs the route's path: #[{kind}(\"/items/{{id}}\")]"),
        ));
    };
    let parser = |input: ParseStream<'_>| {
        let path: LitStr = input.parse()?;
        if !path.value().starts_with('/') {
            return Err(syn::Error::new_spanned(
                &path,
                "a route's path starts with '/' (it is relative to the module's mount point)",
            ));
        }
        let mut declared = Declared {
            kind: kind.to_owned(),
            path,
            public: false,
            require: None,
            status: None,
            errors: Vec::new(),
        };
        while !input.is_empty() {
            input.parse::<Token![,]>()?;
            if input.is_empty() {
                break;
            }
            let option: Meta = input.parse()?;
            let name = option
                .path()
                .get_ident()
                .map(ToString::to_string)
                .unwrap_or_default();
            match (name.as_str(), &option) {
                ("public", Meta::Path(_)) => declared.public = true,
                ("require", Meta::NameValue(pair)) => declared.require = Some(string(&pair.value)?),
                ("status", Meta::NameValue(pair)) => declared.status = Some(integer(&pair.value)?),
                ("errors", Meta::List(list)) => {
                    let statuses =
                        list.parse_args_with(Punctuated::<LitInt, Token![,]>::parse_terminated)?;
                    declared.errors.extend(statuses);
                }
                _ => {
                    return Err(syn::Error::new_spanned(
                        &option,
                        "unknown route option: use public, require = \"permission\", status = 201 or errors(404, 409)",
                    ));
                }
            }
        }
        if declared.public && declared.require.is_some() {
            return Err(syn::Error::new_spanned(
                &declared.path,
                "a route is either public or requires a permission, not both",
            ));
        }
        Ok(declared)
    };
    parser.parse2(list.tokens.clone())
}

fn string(expr: &Expr) -> syn::Result<LitStr> {
    match expr {
        Expr::Lit(lit) => match &lit.lit {
            Lit::Str(text) => Ok(text.clone()),
            _ => Err(syn::Error::new_spanned(expr, "expected a string")),
        },
        _ => Err(syn::Error::new_spanned(expr, "expected a string")),
    }
}

fn integer(expr: &Expr) -> syn::Result<LitInt> {
    match expr {
        Expr::Lit(lit) => match &lit.lit {
            Lit::Int(number) => Ok(number.clone()),
            _ => Err(syn::Error::new_spanned(expr, "expected a status, e.g. 201")),
        },
        _ => Err(syn::Error::new_spanned(expr, "expected a status, e.g. 201")),
    }
}

/// The doc comment's first paragraph (one line) and the rest.
fn doc_comment(attributes: &[Attribute]) -> (String, String) {
    let mut lines = Vec::new();
    for attribute in attributes {
        if let Meta::NameValue(pair) = &attribute.meta
            && pair.path.is_ident("doc")
            && let Ok(text) = string(&pair.value)
        {
            let text = text.value();
            lines.push(text.strip_prefix(' ').unwrap_or(&text).to_owned());
        }
    }
    let text = lines.join("\n");
    let text = text.trim();
    match text.split_once("\n\n") {
        Some((first, rest)) => (
            first.split_whitespace().collect::<Vec<_>>().join(" "),
            rest.trim().to_owned(),
        ),
        None => (
            text.split_whitespace().collect::<Vec<_>>().join(" "),
            String::new(),
        ),
    }
}
