"""factory-boy factories, one per model: `<Model>Factory`."""

import factory
from django.utils import timezone

from items.models import Category, Item, Tag
from recommendations.models import BusinessRule, Interaction, InteractionType, ModelVersion
from users.models import ApiKey, EndUser


class EndUserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = EndUser

    external_id = factory.Sequence(lambda n: f"user-{n}")
    attributes = factory.LazyFunction(lambda: {"age": 30, "country": "FR"})


class CategoryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Category
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"category-{n}")


class TagFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tag
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"tag-{n}")


class ItemFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Item
        skip_postgeneration_save = True

    external_id = factory.Sequence(lambda n: f"item-{n}")
    title = factory.Faker("sentence", nb_words=3)
    description = factory.Faker("paragraph")
    attributes = factory.LazyFunction(lambda: {"price": 10})

    @factory.post_generation
    def categories(self, create, extracted, **kwargs):
        if create and extracted:
            self.categories.set(
                [c if isinstance(c, Category) else CategoryFactory(name=c) for c in extracted]
            )

    @factory.post_generation
    def tags(self, create, extracted, **kwargs):
        if create and extracted:
            self.tags.set([t if isinstance(t, Tag) else TagFactory(name=t) for t in extracted])


class InteractionTypeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = InteractionType
        django_get_or_create = ("name",)

    name = "view"
    weight = 1.0
    is_positive = True


class InteractionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Interaction

    user = factory.SubFactory(EndUserFactory)
    item = factory.SubFactory(ItemFactory)
    type = factory.SubFactory(InteractionTypeFactory)
    timestamp = factory.LazyFunction(timezone.now)


class ModelVersionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ModelVersion

    status = ModelVersion.Status.READY


class BusinessRuleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BusinessRule

    action = BusinessRule.Action.BLOCK
    target = BusinessRule.Target.ITEM
    item = factory.SubFactory(ItemFactory)


class ApiKeyFactory(factory.django.DjangoModelFactory):
    """Builds a key row with a known raw key available as `.raw_key` (not a field)."""

    class Meta:
        model = ApiKey
        exclude = ("raw_key",)

    name = factory.Sequence(lambda n: f"key-{n}")
    kind = ApiKey.Kind.WRITE
    prefix = factory.Sequence(lambda n: f"p{n:07d}")
    raw_key = factory.LazyAttribute(lambda o: f"rs_{o.prefix}_secret")
    hashed_key = factory.LazyAttribute(
        lambda o: __import__("users.authentication", fromlist=["hash_key"]).hash_key(o.raw_key)
    )
